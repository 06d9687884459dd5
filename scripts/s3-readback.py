#!/usr/bin/env python3
"""Read back what linewatch wrote to S3 (the test server scripts/test.sh starts), as JSON.

  s3-readback.py s3://bucket/prefix/scores
      reads the hive-partitioned Parquet table under that prefix
      (date=YYYY-MM-DD/line=<line>/part-*.parquet) and prints
      {"rows": N, "files": F, "columns": [...], "feature": NAME|null,
       "windows": [[machine, window_start_ms, n_readings, feature_value|null], ...]}
      with windows sorted; window_start in integer epoch milliseconds whatever its unit;
      "feature" is the first floating-point column (schema order) that is not a key column.
  s3-readback.py --list s3://bucket/prefix
      prints every object under the prefix: [{"key": ..., "size": ...}, ...] sorted by key.

The S3 connection comes from the environment: AWS_ENDPOINT (or LINEWATCH_TEST_S3_ENDPOINT),
AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION.
Only *.parquet objects are read (reported on stderr: any other object under the prefix).
"""
import json
import math
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

KEYS = ("machine", "window_start", "n_readings")
MS_PER_UNIT = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


def fail(msg):
    print(f"s3-readback: {msg}", file=sys.stderr)
    sys.exit(1)


def filesystem():
    endpoint = os.environ.get("AWS_ENDPOINT") or os.environ.get("LINEWATCH_TEST_S3_ENDPOINT")
    allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")
    kw = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if endpoint:
        scheme, sep, host = endpoint.partition("://")
        if not sep:
            scheme, host = ("http" if allow_http else "https"), endpoint
        kw.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    for arg, var in (("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY"),
                     ("session_token", "AWS_SESSION_TOKEN")):
        if os.environ.get(var):
            kw[arg] = os.environ[var]
    return pafs.S3FileSystem(**kw)


def objects(fs, path):
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path)


def to_ms(column):
    t = column.type
    if pa.types.is_timestamp(t):
        mul, div = MS_PER_UNIT[t.unit]
        return [None if v is None else v * mul // div
                for v in column.cast(pa.int64()).to_pylist()]
    if pa.types.is_integer(t):  # already epoch milliseconds
        return column.to_pylist()
    fail(f"column window_start has type {t}, expected a timestamp or integer milliseconds")


def plain(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def read_table(fs, path):
    files = [i.path for i in objects(fs, path)]
    parquet = [f for f in files if f.endswith(".parquet")]
    others = sorted(set(files) - set(parquet))
    if others:
        print(f"s3-readback: ignoring {len(others)} non-parquet object(s): {others}", file=sys.stderr)
    # One file at a time, so that files whose schemas differ (a timestamp unit, a new column)
    # are each read as written rather than cast to the first file's schema.
    columns, feature, windows, rows = [], None, [], 0
    for f in parquet:
        table = ds.dataset([f], filesystem=fs, format="parquet",
                           partitioning=ds.partitioning(flavor="hive"), partition_base_dir=path).to_table()
        missing = [k for k in KEYS if k not in table.column_names]
        if missing:
            fail(f"{f}: column(s) {missing} missing; the file has {table.column_names}")
        columns += [c for c in table.column_names if c not in columns]
        feature = feature or next((c.name for c in table.schema
                                   if c.name not in KEYS and pa.types.is_floating(c.type)), None)
        values = (table.column(feature).to_pylist() if feature in table.column_names
                  else [None] * table.num_rows)
        windows += [[m, w, n, plain(v)] for m, w, n, v in
                    zip(table.column("machine").to_pylist(), to_ms(table.column("window_start")),
                        table.column("n_readings").to_pylist(), values)]
        rows += table.num_rows
    windows.sort(key=lambda r: tuple((v is None, v if v is not None else 0) for v in r))
    return {"rows": rows, "files": len(parquet), "columns": columns, "feature": feature,
            "windows": windows}


def main(argv):
    listing = "--list" in argv
    args = [a for a in argv if a != "--list"]
    if len(args) != 1 or not args[0].startswith("s3://"):
        fail("usage: s3-readback.py [--list] s3://bucket/prefix")
    path = args[0][len("s3://"):].rstrip("/")
    fs = filesystem()
    if listing:
        bucket = path.split("/", 1)[0]
        out = [{"key": i.path[len(bucket) + 1:], "size": i.size} for i in objects(fs, path)]
    else:
        out = read_table(fs, path)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
