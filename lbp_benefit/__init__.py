"""The ``lbp-benefit`` command line: composes ``training`` and ``serving`` (which never import each other)."""
