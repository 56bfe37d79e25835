"""Recording archiver: memory and throughput, measured side by side in one run.

1. Peak RSS growth of the archiving process, for a 16 MiB and a 256 MiB recording
   streamed from the local storage stand-in into moto server's S3, each in a fresh
   process (VmHWM reset through /proc/self/clear_refs after warm-up when the kernel
   allows it, else read before and after). Targets: the two growths within 16 MiB of
   each other (memory does not grow with the recording), and each under 64 MiB.
2. Throughput as a ratio to boto3's `upload_file` of the same bytes from local disk
   into the same moto server, run alternately with the archiver in the same run.
   Target >= 0.9. The archiver downloads and hashes the body (SHA-256 of the whole,
   then of each part for S3 to check), uploads up to 4 parts at once straight to the
   final key and tags the object with its SHA-256; `upload_file` only reads a local
   file and uploads it, 10 parts at once.

Each figure is the best of REPEATS runs. The bench reports, it does not gate: it
exits 0 either way. Run: `.venv/bin/python bench/archive.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools"), str(ROOT)]

import boto3  # noqa: E402

from voicebus.archive.download import RecordingSource  # noqa: E402
from voicebus.archive.writer import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, ArchiveWriter  # noqa: E402
from voicebus_cli.local.moto_server import MotoServer  # noqa: E402
from voicebus_cli.local.storage import StorageServer, expected_sha256, recording_bytes  # noqa: E402

MIB = 1024 * 1024
SIZES_MIB = (16, 256)
REPEATS = 3
RSS_SPREAD_TARGET_MIB = 16
RSS_LIMIT_MIB = 64
THROUGHPUT_TARGET = 0.9


# ---------------------------------------------------------------------- child processes


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Make VmHWM restart from the current RSS, so warm-up peaks do not hide the measured one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _measured(run: Any) -> dict[str, Any]:
    reset = _reset_peak()
    before = _status_kib("VmHWM")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss_growth_kib": _status_kib("VmHWM") - before,
        "peak_reset": reset,
        "result": result,
    }


def child_archive(url: str, bucket: str, key: str) -> dict[str, Any]:
    s3 = boto3.client("s3")
    archiver = ArchiveWriter(s3, bucket)
    # Warm-up: endpoint rules, the S3 model and urllib3 are loaded before measuring.
    archiver.archive_text(f"warmup/{uuid.uuid4().hex}.txt", "warm", "text/plain")
    source = RecordingSource(url, key, "audio/wav", {"recording-id": key.rsplit("/", 1)[-1]})
    return _measured(lambda: archiver.archive(source).sha256)


def child_upload_file(path: str, bucket: str, key: str) -> dict[str, Any]:
    s3 = boto3.client("s3")
    warmup = Path(path).with_suffix(".warmup")
    warmup.write_bytes(b"warm")
    s3.upload_file(str(warmup), bucket, f"warmup/{uuid.uuid4().hex}.bin")  # loads s3transfer first
    return _measured(lambda: s3.upload_file(path, bucket, key))


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False, env=os.environ
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------- the run


@dataclass
class Measure:
    size_mib: int
    archive_seconds: float
    upload_file_seconds: float
    archive_rss_mib: float
    upload_file_rss_mib: float
    sha_ok: bool
    peak_reset: bool

    @property
    def ratio(self) -> float:
        """Archiver throughput over upload_file throughput (same bytes, so the inverse time ratio)."""
        return self.upload_file_seconds / self.archive_seconds


def write_recording(path: Path, size: int, seed: str) -> None:
    with path.open("wb") as file:
        for chunk in recording_bytes(size, seed, chunk_bytes=4 * MIB):
            file.write(chunk)


def forget(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every version under prefix so moto's memory does not pile up between runs."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


def measure(storage: StorageServer, s3: Any, bucket: str, workdir: Path, size_mib: int) -> Measure:
    size = size_mib * MIB
    recording = storage.publish(f"bench-{size_mib}", size)
    expected = expected_sha256(size, recording.seed)
    local = workdir / f"bench-{size_mib}.bin"
    write_recording(local, size, recording.seed)
    archive_runs: list[dict[str, Any]] = []
    upload_runs: list[dict[str, Any]] = []
    for repeat in range(REPEATS):
        # Alternate the order so neither side always meets a warmer (or fuller) moto.
        order = ("archive", "upload-file") if repeat % 2 == 0 else ("upload-file", "archive")
        for kind in order:
            key = f"bench/{kind}/{size_mib}/{uuid.uuid4().hex}.wav"
            if kind == "archive":
                archive_runs.append(run_child("archive", recording.url, bucket, key))
            else:
                upload_runs.append(run_child("upload-file", str(local), bucket, key))
            forget(s3, bucket, "bench/")
    local.unlink()
    return Measure(
        size_mib=size_mib,
        archive_seconds=min(run["seconds"] for run in archive_runs),
        upload_file_seconds=min(run["seconds"] for run in upload_runs),
        archive_rss_mib=max(run["rss_growth_kib"] for run in archive_runs) / 1024,
        upload_file_rss_mib=max(run["rss_growth_kib"] for run in upload_runs) / 1024,
        sha_ok=all(run["result"] == expected for run in archive_runs),
        peak_reset=all(run["peak_reset"] for run in archive_runs + upload_runs),
    )


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def report(measures: list[Measure]) -> None:
    peak_reset = all(m.peak_reset for m in measures)
    print(
        f"recording archiver benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"part {DEFAULT_PART_SIZE // MIB} MiB, {DEFAULT_CONCURRENCY} parts at once; best of {REPEATS})"
    )
    print(f"peak RSS read from VmHWM, {'reset after warm-up' if peak_reset else 'before/after (no reset)'}")
    print()
    print(
        f"{'size':>8}{'archive s':>11}{'MiB/s':>8}{'upload_file s':>15}{'MiB/s':>8}{'ratio':>8}{'target':>9}  verdict"
    )
    for m in measures:
        ok = m.ratio >= THROUGHPUT_TARGET
        print(
            f"{m.size_mib:>4} MiB{m.archive_seconds:>11.2f}{m.size_mib / m.archive_seconds:>8.1f}"
            f"{m.upload_file_seconds:>15.2f}{m.size_mib / m.upload_file_seconds:>8.1f}"
            f"{m.ratio:>8.2f}{'>= ' + str(THROUGHPUT_TARGET):>9}  {verdict(ok)}"
        )
    print()
    print(f"{'size':>8}{'archive RSS growth':>20}{'upload_file RSS growth':>24}{'target':>10}  verdict")
    for m in measures:
        ok = m.archive_rss_mib < RSS_LIMIT_MIB
        print(
            f"{m.size_mib:>4} MiB{m.archive_rss_mib:>16.1f} MiB{m.upload_file_rss_mib:>20.1f} MiB"
            f"{'< ' + str(RSS_LIMIT_MIB) + ' MiB':>10}  {verdict(ok)}"
        )
    spread = max(m.archive_rss_mib for m in measures) - min(m.archive_rss_mib for m in measures)
    label = f"spread {SIZES_MIB[0]} vs {SIZES_MIB[-1]} MiB"
    print(
        f"{label:>28}{spread:>8.1f} MiB{'':>20}{'<= ' + str(RSS_SPREAD_TARGET_MIB) + ' MiB':>10}  "
        f"{verdict(spread <= RSS_SPREAD_TARGET_MIB)}"
    )
    print()
    print(f"SHA-256 of every archived object equals the source's: {'yes' if all(m.sha_ok for m in measures) else 'NO'}")


def main() -> int:
    started = time.perf_counter()
    with MotoServer() as moto, StorageServer() as storage, tempfile.TemporaryDirectory() as workdir:
        os.environ.update(moto.environment())
        s3 = boto3.client("s3")
        bucket = f"voicebus-bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        measures = [measure(storage, s3, bucket, Path(workdir), size) for size in SIZES_MIB]
    report(measures)
    print(f"total run time {time.perf_counter() - started:.0f} s")
    return 0


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["archive", "upload-file"])
    parser.add_argument("source")
    parser.add_argument("bucket")
    parser.add_argument("key")
    args = parser.parse_args(argv)
    if args.kind == "archive":
        outcome = child_archive(args.source, args.bucket, args.key)
    else:
        outcome = child_upload_file(args.source, args.bucket, args.key)
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main())
