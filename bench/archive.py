"""Recording archiver: throughput and memory, measured side by side in one run.

Three ways of putting the same recording into moto server's S3, each run in a fresh
process, alternated in a rotating order round after round:

- `floor`: boto3's `upload_file` of the bytes from local disk (10 parts at once, CRC32).
- `writer`: voicebus's ArchiveWriter, built as the recording function builds it
  (`writer_from_env`): streams over HTTP from a local file server (`RecordingFileServer`,
  below), checks content type,
  magic bytes, size cap and deadline, hashes the whole (SHA-256) and each part (CRC32,
  S3 checks it), uploads 4 parts at once under conditional writes, tags the SHA-256.
  A recording that announces at most the 32 MiB of the parts in flight (the 16 MiB one
  here) is read whole and sent as one conditional PutObject instead.
- `managed`: boto3's managed transfer, `upload_fileobj` with a TransferConfig of the
  same part size, part checksum (CRC32), concurrency and parts held in memory, over a
  non-seekable reader that wraps the same HTTP download and hashes it (SHA-256) as
  s3transfer reads it, then the tag. This is the alternative of issue 13, measured
  with none of the writer's checks and without exactly-once (s3transfer passes no
  If-None-Match / If-Match, and completes a second upload of the same bytes as a new
  version): its best case.

Throughput: each round gives a ratio per subject, floor seconds over subject seconds
(the same bytes, so >= 1 is faster than the floor); printed are the min and median
of those, and the best-of ratio (the floor's best time over the subject's best time),
which the issue's target (>= 0.9, "best of several alternating runs") judges.
Memory: peak RSS growth during the transfer (VmHWM, reset after warm-up when the
kernel allows), for 16 and 256 MiB: under 64 MiB, and flat: at no size more than the
parts in flight (4 x 8 MiB) and 16 MiB besides, so it does not grow with the recording.
Only the transfer is timed, after a warm-up in the same process, so imports (and
bytecode, PYTHONDONTWRITEBYTECODE=1 here) do not enter the figures.

Noise: at 256 MiB about half of every transfer is moto's CompleteMultipartUpload,
which copies the object several times in fresh memory; on this VM that varies from
0.5 to 2.3 s from one call to the next, for the floor and the subjects alike (the
bench prints the range it saw, timed by hooks on each child's boto3 session). Hence
15 rounds by default (with 9, the writer's best-of at 256 MiB went from 0.87 to 0.93
between two runs), and the median printed beside the best-of.

The bench reports, it does not gate: it exits 0 either way.
Run: `.venv/bin/python bench/archive.py [--rounds N] [--sizes 16,256]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools"), str(ROOT)]

import boto3  # noqa: E402
import urllib3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config  # noqa: E402

from voicebus.archive.download import RecordingSource  # noqa: E402
from voicebus.archive.settings import writer_from_env  # noqa: E402
from voicebus.archive.writer import (  # noqa: E402
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    PART_CHECKSUM_ALGORITHM,
    SHA256_TAG_KEY,
)
from voicebus_cli.local.moto_server import MotoServer  # noqa: E402
from voicebus_cli.local.storage import CONTENT_TYPES, recording_bytes  # noqa: E402

MIB = 1024 * 1024
SIZES_MIB = (16, 256)
ROUNDS = 15
# Flat: never more than the parts in flight plus this much (buffers of the HTTP and TLS layers, threads).
RSS_SLACK_MIB = 16
RSS_LIMIT_MIB = 64
THROUGHPUT_TARGET = 0.9
SUBJECTS = ("writer", "managed")
KINDS = ("floor", *SUBJECTS)
FMT = "wav"


# ---------------------------------------------------------------------- child processes


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {name}")


def _reset_peak() -> bool:
    """Make VmHWM restart from the current RSS, so warm-up peaks do not hide the measured one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# How long each CompleteMultipartUpload took, as the client saw it: moto's share of the noise.
_COMPLETIONS: list[float] = []


def _time_completions() -> None:
    """Hooks on the default session, so every client a child makes afterwards (the subject's too) is timed."""
    session = boto3.session.Session()
    boto3.DEFAULT_SESSION = session
    events = session.events
    sent: list[float] = []
    events.register("before-send.s3.CompleteMultipartUpload", lambda **_: sent.append(time.perf_counter()))
    events.register(
        "after-call.s3.CompleteMultipartUpload", lambda **_: _COMPLETIONS.append(time.perf_counter() - sent.pop())
    )


def _measured(run: Any) -> dict[str, Any]:
    reset = _reset_peak()
    before = _status_kib("VmHWM")
    _COMPLETIONS.clear()
    start, cpu = time.perf_counter(), time.process_time()
    result = run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_growth_kib": _status_kib("VmHWM") - before,
        "peak_reset": reset,
        "complete_seconds": sum(_COMPLETIONS),
        "result": result,
    }


def _client() -> Any:
    """The recording function's S3 client configuration (voicebus.archive.settings)."""
    return boto3.client("s3", config=Config(s3={"payload_signing_enabled": False}))


def child_writer(url: str, bucket: str, key: str) -> dict[str, Any]:
    _time_completions()
    os.environ.update({"ARCHIVE_BUCKET_NAME": bucket, "RECORDING_HTTP_HOSTS": "127.0.0.1"})
    archiver = writer_from_env()
    # Warm-up: endpoint rules, the S3 model and urllib3 are loaded before measuring.
    archiver.archive_text(f"warmup/{uuid.uuid4().hex}.txt", "warm", "text/plain")
    source = RecordingSource(url, key, "audio/wav", {"recording-id": key.rsplit("/", 1)[-1]})
    return _measured(lambda: archiver.archive(source, deadline=time.monotonic() + 600).sha256)


class HashingReader:
    """A non-seekable file over the HTTP response: s3transfer reads parts from it, SHA-256 on the way."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self.sha256 = hashlib.sha256()

    def read(self, amount: int = -1) -> bytes:
        data = self._response.read(None if amount < 0 else amount)
        self.sha256.update(data)
        return data

    def seekable(self) -> bool:
        return False


def child_managed(url: str, bucket: str, key: str) -> dict[str, Any]:
    _time_completions()
    s3 = _client()
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=30))
    config = TransferConfig(
        multipart_threshold=DEFAULT_PART_SIZE,
        multipart_chunksize=DEFAULT_PART_SIZE,
        max_concurrency=DEFAULT_CONCURRENCY,
        use_threads=True,
    )
    # s3transfer reads a non-seekable body ahead into up to 10 chunks by default (80 MiB here, 105 MiB
    # peak measured); held to the writer's budget of `concurrency` parts, as the memory target asks.
    config.max_in_memory_upload_chunks = DEFAULT_CONCURRENCY
    extra = {
        "ContentType": "audio/wav",
        "Metadata": {"recording-id": key.rsplit("/", 1)[-1]},
        "ChecksumAlgorithm": PART_CHECKSUM_ALGORITHM,  # the writer's part checksum (CRC32)
    }
    s3.put_object(Bucket=bucket, Key=f"warmup/{uuid.uuid4().hex}.txt", Body=b"warm")

    def transfer() -> str:
        response = http.request("GET", url, preload_content=False, decode_content=False)
        reader = HashingReader(response)
        s3.upload_fileobj(reader, bucket, key, ExtraArgs=extra, Config=config)
        response.release_conn()
        sha256 = reader.sha256.hexdigest()
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": SHA256_TAG_KEY, "Value": sha256}]})
        return sha256

    return _measured(transfer)


def child_floor(path: str, bucket: str, key: str) -> dict[str, Any]:
    _time_completions()
    s3 = boto3.client("s3")
    warmup = Path(path).with_suffix(".warmup")
    warmup.write_bytes(b"warm")
    s3.upload_file(str(warmup), bucket, f"warmup/{uuid.uuid4().hex}.bin")  # loads s3transfer first
    return _measured(lambda: s3.upload_file(path, bucket, key))


CHILDREN = {"writer": child_writer, "managed": child_managed, "floor": child_floor}


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
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    expected_sha256: str = ""

    def seconds(self, kind: str) -> list[float]:
        return [run["seconds"] for run in self.runs[kind]]

    def round_ratios(self, subject: str) -> list[float]:
        """Per round: the floor's seconds over the subject's (>= 1: faster than the floor)."""
        return [floor / mine for floor, mine in zip(self.seconds("floor"), self.seconds(subject), strict=True)]

    def cpu_seconds(self, kind: str) -> float:
        """The least CPU (all threads of the process) one transfer took: its own cost, whatever the load."""
        return min(float(run["cpu_seconds"]) for run in self.runs[kind])

    def best_ratio(self, subject: str) -> float:
        return float(min(self.seconds("floor")) / min(self.seconds(subject)))

    def rss_mib(self, kind: str) -> float:
        return max(float(run["rss_growth_kib"]) for run in self.runs[kind]) / 1024

    def sha_ok(self, subject: str) -> bool:
        return all(run["result"] == self.expected_sha256 for run in self.runs[subject])

    @property
    def peak_reset(self) -> bool:
        return all(run["peak_reset"] for runs in self.runs.values() for run in runs)


def write_recording(path: Path, size: int, seed: str) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for chunk in recording_bytes(size, seed, chunk_bytes=4 * MIB, fmt=FMT):
            file.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def forget(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every version under prefix so moto's memory does not pile up between runs."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    for version in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


class _RecordingHandler(BaseHTTPRequestHandler):
    """GET /<name>: the file of that name in the server's folder, handed to the kernel (sendfile)."""

    protocol_version = "HTTP/1.1"
    server: RecordingFileServer

    def do_GET(self) -> None:
        path = self.server.folder / self.path.lstrip("/")
        if "/" in self.path.lstrip("/") or not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[FMT])
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        self.wfile.flush()
        with path.open("rb") as file:
            self.connection.sendfile(file)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a line per request would be the bench's own noise."""


class RecordingFileServer(ThreadingHTTPServer):
    """Serves the recordings from disk with sendfile on 127.0.0.1, as Telnyx's storage would, costing no CPU.

    The storage stand-in of the tests (`voicebus_cli.local.storage`) sends from Python,
    256 KiB per write, each copied into the kernel: on these two cores that CPU would be
    taken from the transfer measured, while in AWS it is Telnyx's. The kernel sending a
    file from the page cache is the least a server can cost; the subject's own download
    (receiving, checking, hashing) is all still measured.
    """

    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.folder = folder

    def url(self, path: Path) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path.name}"

    def __enter__(self) -> RecordingFileServer:
        threading.Thread(target=self.serve_forever, name="recording-files", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def measure(files: RecordingFileServer, s3: Any, bucket: str, size_mib: int, rounds: int) -> Measure:
    size = size_mib * MIB
    local = files.folder / f"bench-{size_mib}.{FMT}"
    result = Measure(size_mib, expected_sha256=write_recording(local, size, seed=f"bench-{size_mib}"))
    for round_number in range(rounds):
        # Rotate the order so no kind always meets a warmer (or fuller) moto, or runs first.
        shift = round_number % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            key = f"bench/{kind}/{size_mib}/{uuid.uuid4().hex}.wav"
            source = str(local) if kind == "floor" else files.url(local)
            result.runs[kind].append(run_child(kind, source, bucket, key))
            forget(s3, bucket, "bench/")
        print(
            f"  {size_mib} MiB round {round_number + 1}/{rounds}: "
            + ", ".join(f"{kind} {result.runs[kind][-1]['seconds']:.2f} s" for kind in KINDS),
            flush=True,
        )
    local.unlink()
    return result


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def report(measures: list[Measure], rounds: int) -> None:
    peak_reset = all(m.peak_reset for m in measures)
    print()
    print(
        f"recording archiver benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"part {DEFAULT_PART_SIZE // MIB} MiB, {DEFAULT_CONCURRENCY} parts at once; {rounds} alternating rounds; "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}, "
        "only the transfer is timed, after a warm-up)"
    )
    print(f"peak RSS read from VmHWM, {'reset after warm-up' if peak_reset else 'before/after (no reset)'}")
    print()
    print("throughput: floor (upload_file from disk) seconds / subject seconds, per round; target best-of >= 0.9")
    header = f"{'size':>8}  {'subject':<8}{'best s':>8}{'MiB/s':>8}{'floor s':>9}{'min':>7}{'median':>8}{'best-of':>9}"
    print(f"{header}  verdict (best-of; median)")
    for m in measures:
        for subject in SUBJECTS:
            ratios = m.round_ratios(subject)
            best = m.best_ratio(subject)
            median = statistics.median(ratios)
            print(
                f"{m.size_mib:>4} MiB  {subject:<8}{min(m.seconds(subject)):>8.2f}"
                f"{m.size_mib / min(m.seconds(subject)):>8.1f}{min(m.seconds('floor')):>9.2f}"
                f"{min(ratios):>7.2f}{median:>8.2f}{best:>9.2f}  "
                f"{verdict(best >= THROUGHPUT_TARGET)}; median {verdict(median >= THROUGHPUT_TARGET)}"
            )
    print()
    print("CPU of the transferring process (all its threads), least of the rounds; the rest of the time it waits")
    print(f"{'size':>8}" + "".join(f"{kind:>12}" for kind in KINDS))
    for m in measures:
        print(f"{m.size_mib:>4} MiB" + "".join(f"{m.cpu_seconds(kind):>10.2f} s" for kind in KINDS))
    print()
    in_flight_mib = DEFAULT_PART_SIZE * DEFAULT_CONCURRENCY // MIB
    bound_mib = min(in_flight_mib + RSS_SLACK_MIB, RSS_LIMIT_MIB)
    print("moto's CompleteMultipartUpload within the transfer: seconds, least and most of the rounds (0: none)")
    print(f"{'size':>8}" + "".join(f"{kind:>14}" for kind in KINDS))
    for m in measures:
        spans = [[float(run["complete_seconds"]) for run in m.runs[kind]] for kind in KINDS]
        print(f"{m.size_mib:>4} MiB" + "".join(f"{min(span):.2f}-{max(span):.2f} s".rjust(14) for span in spans))
    print()
    print(
        f"memory: peak RSS growth during the transfer, worst of {rounds}; target < {RSS_LIMIT_MIB} MiB and flat "
        f"(at most the {in_flight_mib} MiB of parts in flight + {RSS_SLACK_MIB} at every size)"
    )
    print(f"{'size':>8}" + "".join(f"{kind:>12}" for kind in KINDS))
    for m in measures:
        print(f"{m.size_mib:>4} MiB" + "".join(f"{m.rss_mib(kind):>8.1f} MiB" for kind in KINDS))
    for subject in SUBJECTS:
        growths = [m.rss_mib(subject) for m in measures]
        print(f"  {subject}: at most {max(growths):.1f} MiB (<= {bound_mib}): {verdict(max(growths) <= bound_mib)}")
    print()
    for subject in SUBJECTS:
        same = all(m.sha_ok(subject) for m in measures)
        print(f"{subject}: SHA-256 of every transfer equals the recording's: {'yes' if same else 'NO'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds per size (default {ROUNDS})")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES_MIB)), help="recording sizes in MiB")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    started = time.perf_counter()
    with (
        MotoServer() as moto,
        tempfile.TemporaryDirectory() as workdir,
        RecordingFileServer(Path(workdir)) as files,
    ):
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
        measures = [measure(files, s3, bucket, size, args.rounds) for size in sizes]
    report(measures, args.rounds)
    print(f"total run time {time.perf_counter() - started:.0f} s")
    return 0


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("source")
    parser.add_argument("bucket")
    parser.add_argument("key")
    args = parser.parse_args(argv)
    print(json.dumps(CHILDREN[args.kind](args.source, args.bucket, args.key)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main())
