"""base: `model.name` -> models/base, the pretrained model every later stage loads (safetensors + tokenizer),
with source.json recording where it came from, its licence and the sha256 of its source files.

For scratch the folder holds only the record: tokenize trains the tokenizer and train builds the model.
"""

from __future__ import annotations

import json
import sys

from medchat.artifacts import atomic_dir, write_json
from medchat.errors import InputError
from medchat.params import load_params

OUT_DIR, METRICS = "models/base", "metrics/base.json"


def main() -> int:
    from medchat.model.loading import quiet_progress
    from medchat.model.sources import SOURCE_FILE, convert

    quiet_progress()
    try:
        params = load_params()
        with atomic_dir(OUT_DIR) as out:
            record = convert(params.model, out)
            (out / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except InputError as exc:
        print(f"base: error: {exc}", file=sys.stderr)
        return 1
    write_json(METRICS, {k: v for k, v in record.items() if k != "sha256"})
    print(
        f"base: {record['name']} ({record['kind']}): {record['origin']}"
        + (f", {record['parameters']:,} parameters" if "parameters" in record else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
