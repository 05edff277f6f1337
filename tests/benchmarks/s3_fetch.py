"""``make bench-s3``: fetching many small song objects from a real S3 API on loopback (moto's server).

Uploads N song files (default 20,000), then reads them back two ways through s3fs: one request at a
time, and the pipeline's way (one flat listing, then batched concurrent GETs over a pool sized to the
concurrency). Prints objects per second for each, and the client's CPU share of the wall time, which shows
whether the client or the endpoint is the limit.

    python tests/benchmarks/s3_fetch.py --objects 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.core.config import load_config  # noqa: E402
from pipeline.demo.generate import generate  # noqa: E402
from pipeline.extract.discover import discover  # noqa: E402
from pipeline.extract.fetch import fetch  # noqa: E402
from pipeline.extract.reader import extract  # noqa: E402
from pipeline.extract.sources import SONG_SOURCE  # noqa: E402
from tests.support.s3_faults import S3Faults  # noqa: E402
from tests.support.services import FAKE_AWS, moto_s3  # noqa: E402


def options(url: str, concurrency: int) -> dict:
    cfg = load_config(
        None, environ={"SPARKIFY__AWS__S3_ENDPOINT_URL": url, "SPARKIFY__SOURCE__CONCURRENCY": str(concurrency)}
    )
    return cfg.storage_options()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--serial-sample", type=int, default=2_000, help="objects fetched one by one (rate only)")
    ap.add_argument(
        "--rtt-ms",
        type=float,
        nargs="+",
        default=[0, 20],
        help="emulated network round trips to measure (default: 0 = raw loopback, and 20 ms)",
    )
    args = ap.parse_args()
    os.environ.update(FAKE_AWS)

    with tempfile.TemporaryDirectory() as tmp, moto_s3() as s3:
        generate(Path(tmp) / "song_data", Path(tmp) / "log_data", songs=args.objects, events=0)
        s3.ensure_bucket("bench")
        files = sorted((Path(tmp) / "song_data").rglob("*.json"))
        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda p: s3.client.put_object(
                        Bucket="bench",
                        Key=f"song_data/{p.relative_to(Path(tmp) / 'song_data').as_posix()}",
                        Body=p.read_bytes(),
                    ),
                    files,
                )
            )
        print(f"uploaded {len(files):,} objects in {time.perf_counter() - start:.1f} s")

        t0 = time.perf_counter()
        fs, found = discover("s3://bench/song_data", options(s3.url, args.concurrency))
        print(f"flat listing: {len(found):,} objects in {time.perf_counter() - t0:.2f} s")

        for rtt in args.rtt_ms:
            url = s3.url
            proxy = None
            if rtt:
                proxy = S3Faults(int(s3.url.rsplit(":", 1)[1]), delay_ms=rtt)
                url = proxy.start()
            fs, _ = discover("s3://bench/song_data", options(url, args.concurrency))
            sample = found[: args.serial_sample if not rtt else max(100, args.serial_sample // 10)]
            t0, c0 = time.perf_counter(), cpu()
            for f in sample:
                fs.cat_file(f.path)
            serial_s, serial_cpu = time.perf_counter() - t0, cpu() - c0
            serial_rate = len(sample) / serial_s

            t0, c0 = time.perf_counter(), cpu()
            datas = fetch(fs, found, concurrency=args.concurrency)
            conc_s, conc_cpu = time.perf_counter() - t0, cpu() - c0
            conc_rate = len(datas) / conc_s
            x = extract(SONG_SOURCE, fs, found, datas=datas)
            assert len(x.frame) == len(found)
            if proxy:
                proxy.stop()
            print(f"\n-- emulated round trip {rtt:g} ms per request --")
            print(
                f"one by one:  {serial_rate:>8,.0f} objects/s  ({len(sample):,} objects, client CPU "
                f"{serial_cpu / serial_s:.0%} of wall)"
            )
            print(
                f"concurrent:  {conc_rate:>8,.0f} objects/s  ({len(datas):,} objects at concurrency "
                f"{args.concurrency}, client CPU {conc_cpu / conc_s:.0%} of wall, {conc_s:.1f} s)"
            )
            print(f"speed-up:    {conc_rate / serial_rate:.1f}x (target >= 5x)")
    print(
        "\nmoto is a single Python process: when the client's CPU share stays well under 100% while the rate "
        "is flat across round trips, the endpoint is the limit."
    )


if __name__ == "__main__":
    main()
