"""The templated generation API: templates, generations and their webhooks."""
