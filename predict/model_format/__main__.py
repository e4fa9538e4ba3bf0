"""``python -m predict.model_format --schema``: print the JSON Schema for docs/artifact.md."""
import json
import sys

from predict.model_format import json_schema


def main(argv: list[str] | None = None) -> None:
    if (sys.argv[1:] if argv is None else argv) != ["--schema"]:
        sys.exit("usage: python -m predict.model_format --schema")
    print(json.dumps(json_schema(), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
