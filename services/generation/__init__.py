"""The templated generation API (/api/v1): template catalogue and prompt rendering."""
