#!/usr/bin/env python3
"""Baseline for `tfrollback diff`: load two state versions with `json` and compare them.

Downloads both versions with boto3 (two threads, as tfrollback reads both at once), parses
them whole with `json`, and compares outputs by name and resource instances by address.
Prints the changes going from FROM to TO as one JSON document.

Usage: diff_baseline.py BUCKET KEY TO_VERSION_ID FROM_VERSION_ID
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3


def instances(state):
    """Resource instances by address (`module.m.type.name[0]`, `data.type.name["k"]`)."""
    found = {}
    for resource in state.get("resources") or []:
        prefix = resource.get("module", "")
        prefix = prefix + "." if prefix else ""
        data = "data." if resource.get("mode") == "data" else ""
        base = f"{prefix}{data}{resource['type']}.{resource['name']}"
        for instance in resource.get("instances") or []:
            index = instance.get("index_key")
            if index is None:
                address = base
            elif isinstance(index, int):
                address = f"{base}[{index}]"
            else:
                address = f"{base}[{json.dumps(index)}]"
            found[address] = instance
    return found


def main():
    bucket, key, to_id, from_id = sys.argv[1:5]
    s3 = boto3.client("s3")

    def load(version_id):
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
        return json.loads(body)

    with ThreadPoolExecutor(max_workers=2) as pool:
        to_state, from_state = pool.map(load, [to_id, from_id])

    outputs = []
    old, new = from_state.get("outputs") or {}, to_state.get("outputs") or {}
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        hidden = (a or {}).get("sensitive") or (b or {}).get("sensitive")
        show = (lambda o: None if o is None else "(sensitive)" if hidden else o.get("value"))
        outputs.append({"name": name, "change": change, "from": show(a), "to": show(b)})

    before, after = instances(from_state), instances(to_state)
    resources = {
        "added": sorted(a for a in after if a not in before),
        "removed": sorted(a for a in before if a not in after),
        "changed": sorted(a for a in after if a in before and after[a] != before[a]),
    }
    json.dump({"outputs": outputs, "resources": resources}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
