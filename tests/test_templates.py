"""The template catalogue: built-in data, option checking, literal rendering, admin extensions."""

from __future__ import annotations

import re

import pytest
import yaml

from services.generation.templates import (
    BUILTIN_FILE,
    FREESTYLE_SYSTEM,
    InvalidOptions,
    RenderedPrompt,
    Template,
    TemplateCatalogue,
    TemplateError,
    UnknownTemplate,
)

CATALOGUE = TemplateCatalogue.load()
PROMPT = "We sell hand-made ceramic mugs from a small studio in Porto."

# Values for options that have no default, so every template can be rendered.
REQUIRED_SAMPLES = {"target_language": "German"}


def required_options(template: Template) -> dict:
    return {o.name: REQUIRED_SAMPLES[o.name] for o in template.options if o.required}


def enum_cases() -> list:
    return [
        pytest.param(t.code, o.name, value, id=f"{t.code}-{o.name}-{value}")
        for t in CATALOGUE.all()
        for o in t.options
        if o.type in ("enum", "boolean")
        for value in (o.values if o.type == "enum" else (True, False))
    ]


# --- the built-in catalogue -------------------------------------------------------------------------------------


def test_builtin_catalogue_is_large_unique_and_well_named():
    templates = CATALOGUE.all()
    assert len(templates) >= 45
    raw_codes = [t["code"] for t in yaml.safe_load(BUILTIN_FILE.read_text())["templates"]]
    assert len(raw_codes) == len(set(raw_codes)) == len(templates)
    for template in templates:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", template.code)
        assert template.name and template.description and template.category
        assert template.max_tokens is None or template.max_tokens > 0
        for option in template.options:
            assert option.description
            assert option.required or option.default is not None


def test_builtin_catalogue_covers_the_promised_kinds_of_content():
    by_category: dict[str, list[str]] = {}
    for template in CATALOGUE.all():
        by_category.setdefault(template.category, []).append(template.code)
    assert set(by_category) >= {"social", "marketing", "ecommerce", "email", "writing", "seo", "business", "support"}
    assert all(len(codes) >= 3 for codes in by_category.values()), by_category
    for code in (
        "bio-twitter", "bio-instagram", "bio-linkedin", "bio-tiktok",
        "caption-instagram", "post-linkedin", "post-facebook", "caption-tiktok", "thread-twitter", "post-twitter",
        "promo-text", "product-description", "product-title", "email-subject-lines",
        "email-cold-outreach", "email-newsletter", "email-follow-up", "email-welcome",
        "ad-google", "ad-facebook", "headline", "slogan", "review-reply-positive", "review-reply-negative",
        "hashtags", "summarize", "rewrite", "paraphrase", "simplify", "expand", "shorten", "grammar-fix",
        "translate", "blog-outline", "blog-intro", "meta-description", "faq", "press-release",
        "job-description", "youtube-title", "youtube-description", "app-store-description", "support-reply",
    ):  # fmt: skip
        assert CATALOGUE.get(code) is not None, code


CREATOR_TONES = ("playful", "flirty", "bold", "sassy", "cheeky", "confident", "sweet", "teasing")


@pytest.mark.parametrize("code", ["bio-twitter", "bio-instagram", "bio-tiktok", "caption-instagram", "post-caption",
                                  "caption-tiktok", "post-twitter", "promo-text", "ppv-message", "sexting-script"])
def test_creator_templates_take_the_tones_creators_ask_for(code):
    # docs/templated-api.md's example asks bio-instagram for a flirty tone; creators ask the same of every social template.
    template = CATALOGUE.get(code)
    assert template is not None, code
    tones = template.option("tone").values
    assert set(CREATOR_TONES) <= set(tones), (code, tones)
    rendered = CATALOGUE.render(code, PROMPT, {"tone": "flirty"})
    assert "Write in a flirty tone." in rendered.user


def test_the_popular_creator_templates_exist_with_their_purpose():
    for code in ("bio-twitter", "bio-instagram", "ppv-message", "post-caption", "sexting-script", "promo-text"):
        assert CATALOGUE.get(code) is not None, code
    assert "pay-per-view" in CATALOGUE.get("ppv-message").description.lower()
    assert "caption" in CATALOGUE.get("post-caption").description.lower()
    # Suggestive, never explicit, consenting adults only: said where the model reads it.
    system = CATALOGUE.render("sexting-script", PROMPT, {}).system
    assert "never sexually explicit" in system and "consenting adult" in system and "18+" in system
    assert "minors" in system


def test_all_is_sorted_by_category_then_code():
    keys = [(t.category, t.code) for t in CATALOGUE.all()]
    assert keys == sorted(keys)


@pytest.mark.parametrize("code", [t.code for t in CATALOGUE.all()])
def test_every_template_renders_with_its_defaults(code):
    template = CATALOGUE.get(code)
    rendered = CATALOGUE.render(code, PROMPT, required_options(template))
    assert rendered.template == code
    assert rendered.user.endswith("Input:\n" + PROMPT)
    assert PROMPT not in rendered.system
    assert list(rendered.options) == [o.name for o in template.options]
    for option in template.options:
        if not option.required:
            assert rendered.options[option.name] == option.default
    # Optional instructions that read as nothing leave no stray blank lines or unfilled placeholders.
    assert "\n\n\n" not in rendered.user
    assert "{{" not in rendered.user + rendered.system


@pytest.mark.parametrize(("code", "name", "value"), enum_cases())
def test_every_enum_and_boolean_value_renders_its_phrase(code, name, value):
    template = CATALOGUE.get(code)
    rendered = CATALOGUE.render(code, PROMPT, {**required_options(template), name: value})
    assert rendered.options[name] == value and type(rendered.options[name]) is type(value)
    assert PROMPT in rendered.user
    phrase = template.option(name).text(value)
    assert phrase in rendered.user or phrase in rendered.system


# --- rendering ----------------------------------------------------------------------------------------------------


def test_bio_instagram_with_witty_tone_and_no_emojis():
    rendered = CATALOGUE.render("bio-instagram", PROMPT, {"tone": "witty", "include_emojis": False})
    assert isinstance(rendered, RenderedPrompt)
    text = rendered.system + "\n" + rendered.user
    assert "Write in a witty tone." in text
    assert "Do not use emojis." in text
    assert "Use a few fitting emojis." not in text
    assert "Instagram" in rendered.system
    # Defaults are filled in and reported, so the caller can log what was actually used.
    assert rendered.options == {
        "tone": "witty",
        "include_emojis": False,
        "length": "medium",
        "call_to_action": "",
        "count": 3,
        "language": "",
    }


def test_user_text_comes_last_after_an_input_line():
    rendered = CATALOGUE.render("summarize", "line one\n\n\nline four", {"format": "bullets"})
    instructions, _, content = rendered.user.partition("\nInput:\n")
    assert "Write it as bullet points." in instructions
    assert content == "line one\n\n\nline four"


def test_integral_floats_from_json_are_integers():
    rendered = CATALOGUE.render("bio-instagram", PROMPT, {"count": 4.0})
    assert rendered.options["count"] == 4 and type(rendered.options["count"]) is int
    assert "Write 4 Instagram bio options" in rendered.user


def test_null_option_means_default():
    rendered = CATALOGUE.render("bio-instagram", PROMPT, {"tone": None})
    assert rendered.options["tone"] == "friendly"


def test_string_option_reads_through_its_phrase_and_vanishes_when_empty():
    with_keywords = CATALOGUE.render("product-description", PROMPT, {"keywords": "ceramic mug, handmade"})
    assert "Work in these keywords naturally: ceramic mug, handmade." in with_keywords.user
    without = CATALOGUE.render("product-description", PROMPT, {})
    assert "keywords" not in without.user
    assert "Target audience" not in without.user


def test_required_string_option_is_inserted():
    rendered = CATALOGUE.render("translate", "Guten Morgen", {"target_language": "Brazilian Portuguese"})
    assert "into Brazilian Portuguese." in rendered.user
    assert rendered.options["target_language"] == "Brazilian Portuguese"


@pytest.mark.parametrize("code", [None, ""])
def test_freestyle_passes_the_prompt_through(code):
    rendered = CATALOGUE.render(code, PROMPT, None)
    assert rendered == RenderedPrompt(system=FREESTYLE_SYSTEM, user=PROMPT, template="", options={})
    assert CATALOGUE.render(code, PROMPT, {}).user == PROMPT


# --- injection: user text is never template syntax -----------------------------------------------------------------

PAYLOADS = [
    "{{tone}}",
    "{{ prompt }}",
    "{prompt}",
    "${x} and %(tone)s",
    "{{__class__.__mro__}}",
    "{{__class__}}",
    "{% for x in range(10) %}{{x}}{% endfor %}",
    r"\g<0> \1 \\n",  # replacement-string escapes of re.sub
    "{{value}}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_prompt_is_inserted_literally(payload):
    rendered = CATALOGUE.render("bio-instagram", payload, {"tone": "witty"})
    assert rendered.user.endswith("Input:\n" + payload)
    assert rendered.user.count("witty") == 1


@pytest.mark.parametrize("payload", PAYLOADS)
def test_string_options_are_inserted_literally(payload):
    translated = CATALOGUE.render("translate", PROMPT, {"target_language": payload[:40], "glossary": payload})
    assert f"into {payload[:40]}." in translated.user
    assert f"Use this glossary: {payload}." in translated.user
    assert translated.user.endswith("Input:\n" + PROMPT)
    reply = CATALOGUE.render("email-reply", PROMPT, {"points": payload, "tone": "bold"})
    assert f"Make these points: {payload}." in reply.user
    assert reply.user.count("bold") == 1


@pytest.mark.parametrize("payload", PAYLOADS)
def test_freestyle_prompt_is_untouched(payload):
    assert CATALOGUE.render(None, payload, None).user == payload


# --- errors ---------------------------------------------------------------------------------------------------------


def test_unknown_template():
    with pytest.raises(UnknownTemplate) as caught:
        CATALOGUE.render("bio-myspace", PROMPT, {})
    assert caught.value.code == "bio-myspace"
    assert str(caught.value) == "Unknown template 'bio-myspace'."
    assert isinstance(caught.value, TemplateError)
    assert CATALOGUE.get("bio-myspace") is None


@pytest.mark.parametrize(
    ("code", "options", "field", "says"),
    [
        ("bio-instagram", {"colour": "red"}, "options.colour", "tone, include_emojis"),
        ("bio-instagram", {"include_emojis": "true"}, "options.include_emojis", "true or false"),
        ("bio-instagram", {"include_emojis": 1}, "options.include_emojis", "true or false"),
        ("bio-instagram", {"count": 3.5}, "options.count", "an integer from 1 to 5"),
        ("bio-instagram", {"count": "3"}, "options.count", "an integer"),
        ("bio-instagram", {"count": True}, "options.count", "an integer"),
        ("bio-instagram", {"count": float("nan")}, "options.count", "an integer"),
        ("bio-instagram", {"count": 6}, "options.count", "from 1 to 5"),
        ("bio-instagram", {"count": 0.0}, "options.count", "from 1 to 5"),
        ("bio-instagram", {"tone": "Witty"}, "options.tone", "professional, friendly, casual, witty"),
        ("bio-instagram", {"tone": ["witty"]}, "options.tone", "must be one of"),
        ("bio-instagram", {"call_to_action": "x" * 151}, "options.call_to_action", "at most 150 characters"),
        ("bio-instagram", {"call_to_action": 7}, "options.call_to_action", "a string"),
        ("translate", {}, "options.target_language", "is required"),
        ("translate", {"target_language": None}, "options.target_language", "is required"),
        (None, {"tone": "witty"}, "options", "freestyle"),
        ("", {"tone": "witty"}, "options", "freestyle"),
    ],
)
def test_invalid_options(code, options, field, says):
    with pytest.raises(InvalidOptions) as caught:
        CATALOGUE.render(code, PROMPT, options)
    assert caught.value.field == field
    assert says in str(caught.value)
    assert isinstance(caught.value, TemplateError)


# --- admin extensions ---------------------------------------------------------------------------------------------


def custom(**changes) -> dict:
    template = {
        "code": "custom-note",
        "name": "Custom note",
        "description": "A note in a chosen mood.",
        "category": "custom",
        "system": "You write short notes.",
        "prompt": "Write a note.\n{{mood}}\n\nInput:\n{{prompt}}",
        "options": [
            {
                "name": "mood",
                "type": "enum",
                "values": ["calm", "loud"],
                "default": "calm",
                "description": "Mood of the note.",
                "phrases": {"calm": "Keep it calm.", "loud": "SHOUT."},
            }
        ],
    }
    template.update(changes)
    return template


def test_file_adds_a_template_and_replaces_a_builtin(tmp_path):
    extra = tmp_path / "extra.yaml"
    replacement = {
        "code": "bio-instagram",
        "name": "House-style Instagram bio",
        "description": "Our own take.",
        "category": "social",
        "model": "mock-chat",
        "max_tokens": 120,
        "system": "You write bios in our house style.",
        "prompt": "{{tone}}\nInput:\n{{prompt}}",
        # Shared options of the built-in file can be reused by name.
        "options": [{"use": "tone", "default": "bold"}],
    }
    extra.write_text(yaml.safe_dump({"templates": [custom(), replacement]}))

    catalogue = TemplateCatalogue.load(extra_files=[str(extra)])

    assert len(catalogue.all()) == len(CATALOGUE.all()) + 1
    assert catalogue.render("custom-note", "hi", {"mood": "loud"}).user == "Write a note.\nSHOUT.\n\nInput:\nhi"
    bio = catalogue.get("bio-instagram")
    assert (bio.name, bio.model, bio.max_tokens) == ("House-style Instagram bio", "mock-chat", 120)
    rendered = catalogue.render("bio-instagram", "hi", {})
    assert rendered == RenderedPrompt(
        system="You write bios in our house style.", user="Write in a bold tone.\nInput:\nhi", template="bio-instagram", options={"tone": "bold"}
    )
    with pytest.raises(InvalidOptions):
        catalogue.render("bio-instagram", "hi", {"include_emojis": True})


def test_inline_templates_come_last(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"templates": [custom(name="From file")]}))
    words = {"name": "words", "type": "integer", "min": 5, "max": 50, "default": 20, "description": "Length in words."}
    inline = custom(
        name="Inline",
        prompt="{{words}}\nInput:\n{{prompt}}",
        options=[{**words, "phrase": "Use about {{value}} words."}],
    )

    catalogue = TemplateCatalogue.load(extra_files=[str(extra)], extra_templates=[inline])

    assert catalogue.get("custom-note").name == "Inline"
    assert catalogue.render("custom-note", "hi", {"words": 30.0}).user == "Use about 30 words.\nInput:\nhi"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"options": [{"name": "mood", "type": "colour", "default": "red", "description": "d"}]}, "unknown type 'colour'"),
        ({"prompt": "{{mood}} {{style}}\n{{prompt}}"}, "{{style}}, which names no variable"),
        ({"system": "Be {{prompt}}."}, "'system' must not use {{prompt}}"),
        ({"prompt": "Write a note about nothing."}, "must use {{prompt}}"),
        ({"prompt": "{{ mood-x }}\n{{prompt}}"}, "malformed placeholder"),
        ({"options": [{**custom()["options"][0], "default": "angry"}]}, "invalid default: options.mood must be one of: calm, loud"),
        ({"options": [custom()["options"][0], custom()["options"][0]]}, "option 'mood' is defined twice"),
        ({"options": [{**custom()["options"][0], "required": True}]}, "a required option takes no default"),
        ({"options": [{"name": "n", "type": "integer", "description": "d"}]}, "needs a 'default'"),
        ({"options": [{"name": "n", "type": "integer", "min": 5, "max": 1, "default": 3, "description": "d"}]}, "greater than 'max'"),
        ({"options": [{"name": "n", "type": "integer", "max": 9, "default": 12, "description": "d"}]}, "invalid default"),
        ({"options": [{"name": "s", "type": "string", "max_length": 3, "default": "long", "description": "d"}]}, "at most 3 characters"),
        ({"options": [{"name": "b", "type": "boolean", "default": "yes", "description": "d"}]}, "true or false"),
        ({"options": [{"name": "e", "type": "enum", "values": ["a", True], "default": "a", "description": "d"}]}, "distinct strings"),
        ({"options": [{**custom()["options"][0], "phrases": {"quiet": "Shh."}}]}, "'phrases' has key 'quiet'"),
        ({"options": [{**custom()["options"][0], "max_length": 5}]}, "unknown keys for a enum option"),
        ({"options": [{**custom()["options"][0], "phrase": "{{mood}}"}]}, "{{mood}}, which names no variable"),
        ({"options": [{"name": "prompt", "type": "string", "default": "", "description": "d"}]}, "not 'prompt'"),
        ({"options": [{"use": "voice"}]}, "unknown shared option 'voice'"),
        ({"options": [{"name": "mood", "type": "enum", "values": ["calm"], "default": "calm"}]}, "'description' must be a non-empty string"),
        ({"max_tokens": 0}, "'max_tokens' must be a positive integer"),
        ({"category": ""}, "'category' must be a non-empty string"),
        ({"temperature": 0.2}, "unknown keys ['temperature']"),
    ],
)
def test_malformed_inline_template_fails_at_load(changes, says):
    with pytest.raises(TemplateError) as caught:
        TemplateCatalogue.load(extra_templates=[custom(**changes)])
    assert "'custom-note'" in str(caught.value)
    assert says in str(caught.value)


def test_template_code_must_be_kebab_case():
    with pytest.raises(TemplateError, match="kebab-case"):
        TemplateCatalogue.load(extra_templates=[custom(code="Custom_Note")])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("templates: [", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("template: []\n", "unknown top-level keys ['template']"),
        (yaml.safe_dump({"templates": [custom(), custom()]}), "defined twice in the same source"),
        (yaml.safe_dump({"shared_options": {"mood": {"type": "enum", "values": [], "default": "x", "description": "d"}}}), "'values' must be"),
    ],
)
def test_malformed_file_fails_at_load_naming_the_file(tmp_path, content, says):
    extra = tmp_path / "broken.yaml"
    extra.write_text(content)
    with pytest.raises(TemplateError) as caught:
        TemplateCatalogue.load(extra_files=[str(extra)])
    assert str(extra) in str(caught.value)
    assert says in str(caught.value)


def test_missing_file_fails_at_load(tmp_path):
    with pytest.raises(TemplateError, match="cannot be read"):
        TemplateCatalogue.load(extra_files=[str(tmp_path / "absent.yaml")])


def test_an_empty_file_adds_nothing(tmp_path):
    extra = tmp_path / "empty.yaml"
    extra.write_text("# nothing yet\n")
    assert len(TemplateCatalogue.load(extra_files=[str(extra)]).all()) == len(CATALOGUE.all())
