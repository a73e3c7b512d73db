"""The evaluation loop: data in, per-item logs and one run record per protocol out.

One run may hold several protocols: images of a dataset are read and embedded once and every
protocol that still needs the image is served from that embedding. Each (run name, protocol)
pair has its own run folder with an append-only log, so an interrupted run resumes where it
stopped and ends with the same record as an uninterrupted one. The loop knows tasks only
through :class:`evalsuite.tasks.Task`, and times every part of the work (:mod:`.timing`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from tqdm import tqdm

from ..data.locate import DataSource, locate
from ..errors import EvalsuiteError, InputError, Interrupted, interrupt_pending
from ..identity import CODE_KEY
from ..models.base import Runner
from ..protocols import Protocol, get_protocol, load_protocols
from ..provenance import code_version
from ..record import RunRecord
from ..tasks import Task, TaskContext, task_class
from .config import RunConfig
from .datasets import identify
from .devices import check_device
from .distributed import DistContext, init_from_env, shutdown
from .loader import batched, decode_plan, default_image_batch, iter_images
from .naming import RunModel, check_name_free, prepare_model, split_overrides
from .runfolder import FOLDER_VERSION, MemoryRunFolder, RunFolder
from .scoring import RecordContext, build_record, ids_sha256, score
from .timing import Clock, SessionTimer, TimedRunner

SKIP_BAD_IMAGE = "bad_image"


@dataclass
class RunOutcome:
    """What a finished protocol run produced."""

    protocol: Protocol
    folder: Path | None  # None: an in-memory run (Python API without an output folder)
    record: RunRecord

    @property
    def record_path(self) -> Path | None:
        return None if self.folder is None else self.folder / "record.json"


def resolve_protocols(names: list[str] | str, overrides: dict[str, Any]) -> list[Protocol]:
    """Protocols by name, each with the overrides among its own options.

    An override that turns a protocol into another shipped one (``coco-1click`` with
    ``clicks=3`` is ``coco-3click``) is refused with a pointer to it; any other override stays
    visible in the protocol's label and in every report of its results.
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise InputError("no protocol given", hint="`evalsuite ls` lists the protocols")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"protocol {dup!r} is named twice")
    if "prompt" in overrides:
        raise InputError(
            "the prompt kind is what a protocol is; pick another protocol instead of --set prompt="
        )
    shipped = load_protocols()
    out, applied = [], set()
    for p in (get_protocol(n) for n in names):
        mine = {k: v for k, v in overrides.items() if k in p.options}
        applied |= set(mine)
        q = p.with_options(mine)
        twin = next(
            (
                s
                for s in shipped.values()
                if s.name != q.name and (s.dataset, s.task, s.options) == (q.dataset, q.task, q.options)
            ),
            None,
        )
        if twin is not None and q.overrides:
            raise InputError(
                f"{p.name} with {', '.join(f'{k}={v}' for k, v in q.overrides.items())} "
                f"is protocol {twin.name}",
                hint=f"run {twin.name} instead (its results then sit in their own column)",
            )
        out.append(q)
    if unused := set(overrides) - applied:
        raise InputError(
            f"option(s) {', '.join(sorted(unused))} apply to none of the protocols {', '.join(names)}"
        )
    return out


@contextlib.contextmanager
def precision_mode(precision: str, device: str) -> Iterator[None]:
    """fp32: the official arithmetic; tf32: TF32 matmuls/convolutions on CUDA; bf16: autocast to bfloat16."""
    dev = torch.device(device)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        if precision == "bf16":
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def run(cfg: RunConfig) -> list[RunOutcome]:
    """Run every protocol of ``cfg`` and return their outcomes (records written unless ``out`` is None).

    Under ``torchrun`` every process calls this; images are sharded across the processes and
    process 0 writes the records (the others return an empty list).
    """
    cfg.check()
    cfg.device = check_device(cfg.device)  # refused before any folder is made
    _, protocol_overrides = split_overrides(cfg)  # --set keys the model declares are the model's
    protocols = resolve_protocols(cfg.protocols, protocol_overrides)
    families = sorted({p.dataset for p in protocols})
    if cfg.ann is not None and len(families) > 1:
        raise InputError(
            "--ann names one annotation file, but the protocols use both COCO and LVIS", hint="run them apart"
        )
    ap = [p for p in protocols if p.task == "ap"]
    if len(ap) > 1:
        raise InputError("--boxes names one detection file; run the AP protocols one at a time")
    if cfg.boxes is not None and not ap:
        raise InputError("--boxes is for the detector-box protocols (coco-vitdet, lvis-vitdet)")
    sources = {f: locate(f, cfg.data, cfg.data_root, cfg.ann) for f in families}  # fail fast on missing data
    dist_ctx, device = init_from_env(cfg.device)
    if dist_ctx.active and cfg.out is None:
        raise InputError("several processes need an output folder they all see; pass out=")
    cfg.device = device
    try:
        model = prepare_model(cfg)
        for p in protocols:
            task_class(p).check_runner(p, model.runner)
        outcomes: dict[str, RunOutcome] = {}
        with precision_mode(cfg.precision, cfg.device):
            for family in families:
                group = [p for p in protocols if p.dataset == family]
                for o in _run_dataset(cfg, model, sources[family], group, dist_ctx):
                    outcomes[o.protocol.name] = o
    finally:
        shutdown(dist_ctx)
    return [outcomes[p.name] for p in protocols if p.name in outcomes]


@dataclass
class _ProtocolRun:
    """Live state of one protocol inside a run: its task, folder and finished images."""

    task: Task
    folder: RunFolder | MemoryRunFolder
    done: dict[int, dict]
    timed: TimedRunner
    complete_at_start: bool = False
    seconds: float = 0.0
    logged: int = 0  # images finished (logged) in this session

    @property
    def protocol(self) -> Protocol:
        return self.task.protocol


def _fingerprint(
    cfg: RunConfig, model: RunModel, task: Task, source: DataSource, reader, ids: list[int]
) -> dict:
    """The settings that determine a protocol run's result: resume only continues an identical run.

    Settings added after the first release are present only when they differ from what that
    release did (random weights, --skip-bad), so folders and run ids made before stay valid.
    """
    fp: dict[str, Any] = {
        "schema_version": FOLDER_VERSION,
        "protocol": task.protocol.id,
        "options": task.protocol.options,
        "model": model.name,
        "checkpoint_sha256": model.runner.checkpoint_sha256,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "dataset": source.name,
        "annotation_sha256": reader.annotation_sha256,
        "image_ids_sha256": ids_sha256(ids),
        **task.fingerprint(),
    }
    if model.part.random_weights:
        fp["weights"] = model.part.weights
    if model.part.fingerprint:
        fp["model_fingerprint"] = model.part.fingerprint
    if model.part.options:
        fp["model_options"] = model.part.options
    if cfg.skip_bad:
        fp["skip_bad"] = True
    fp[CODE_KEY] = code_version()  # resume only with the same code (not part of the run id)
    return fp


def _open_run(
    cfg: RunConfig,
    model: RunModel,
    source: DataSource,
    reader,
    ids,
    protocol: Protocol,
    dist_ctx: DistContext,
    clock,
) -> _ProtocolRun:
    ctx = TaskContext(
        reader=reader,
        image_ids=ids,
        seed=cfg.seed,
        prompt_batch=cfg.prompt_batch,
        boxes=cfg.boxes,
        skip_bad=cfg.skip_bad,
        ap_backend=cfg.ap_backend,
    )
    task = task_class(protocol)(protocol, ctx)
    fp = _fingerprint(cfg, model, task, source, reader, ids)
    folder: RunFolder | MemoryRunFolder | None = None
    if cfg.out is None:
        folder = MemoryRunFolder(fp, task.log_name)
    else:
        name = model.name_for(protocol, source)
        path = Path(cfg.out) / name / protocol.name
        error = None
        if dist_ctx.is_main:  # process 0 sets the folder up and folds earlier sessions' logs together
            try:
                check_name_free(Path(cfg.out) / name, fp)
                folder = RunFolder(path, fp, task.log_name, overwrite=cfg.overwrite)
                folder.consolidate()
            except Exception as e:
                error = e
        dist_ctx.broadcast_error(error)
        if folder is None:
            folder = RunFolder(path, fp, task.log_name, rank=dist_ctx.rank, check_only=True)
    done, _ = folder.load_finished()
    return _ProtocolRun(
        task, folder, done, TimedRunner(model.runner, clock), complete_at_start=all(i in done for i in ids)
    )


def _run_dataset(
    cfg: RunConfig, model: RunModel, source: DataSource, protocols: list[Protocol], dist_ctx: DistContext
) -> list[RunOutcome]:
    reader = source.open()
    source = identify(source, reader.annotation_sha256)  # named by what the file is, not where it was
    ids = reader.image_ids()[: cfg.limit] if cfg.limit else reader.image_ids()
    runner = model.runner
    on_cuda = torch.device(cfg.device).type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    plan = decode_plan(cfg.workers)
    image_batch = cfg.image_batch or default_image_batch(cfg.device)
    clock = Clock(cfg.device)
    runs = [_open_run(cfg, model, source, reader, ids, p, dist_ctx, clock) for p in protocols]
    todo = dist_ctx.shard([i for i in ids if any(i not in r.done for r in runs)])
    timer = SessionTimer(cfg.device, cfg.warmup, len(todo), image_batch)
    desc = f"{model.base_name} on {source.name}"
    if dist_ctx.active:
        desc += f" (process 0 of {dist_ctx.world_size})"
    show = cfg.progress and dist_ctx.is_main
    images = iter_images(
        reader, todo, plan.workers, transform=runner.image_transform(), pin_memory=on_cuda, thread=plan.thread
    )
    progress = (cfg.progress_bar or tqdm)(total=len(todo), desc=desc, unit="img", disable=not show)
    embedder = _Embedder(runner, image_batch, model.base_name, timer)
    try:
        _loop(cfg, runs, images, progress, embedder, timer, image_batch)
    except KeyboardInterrupt:
        raise _interrupted(runs, len(ids)) from None
    except Exception as e:  # an interrupt that landed inside library code may surface as its error
        if interrupt_pending():
            raise _interrupted(runs, len(ids)) from e
        raise
    finally:
        images.close()
        progress.close()
    timer.finish()
    execution = {
        "wall_s": round(timer.session_s or 0.0, 3),
        "images_this_session": len(todo),
        "world_size": dist_ctx.world_size,
        "torch_threads": torch.get_num_threads(),
        "decode_workers": plan.workers,
        **({"decode_thread": True} if plan.thread else {}),
        "image_batch": embedder.size,
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if on_cuda else None,
        **({"image_batch_requested": image_batch} if embedder.size != image_batch else {}),
        **runner.execution_notes(),
    }
    dist_ctx.barrier()
    outcomes = []
    if dist_ctx.is_main:
        ctx = RecordContext(model.part, cfg.seed, cfg.device, source, reader, ids, cfg.limit)
        outcomes = [_finish(ctx, model.name_for(r.protocol, source), r, execution, timer) for r in runs]
    dist_ctx.barrier()
    return outcomes


def _loop(
    cfg: RunConfig,
    runs: list[_ProtocolRun],
    images: Iterator[tuple[Any, Any, Any]],
    progress: Any,
    embedder: _Embedder,
    timer: SessionTimer,
    image_batch: int,
) -> None:
    """Every image still to do: embed in batches, serve each protocol that needs it, log, time.

    Finished images are logged in batches (:class:`~.runfolder.RunFolder`); whatever ends the loop —
    the last image, an error, an interrupt — the queued ones are written before it returns.
    """
    try:
        _serve(cfg, runs, images, progress, embedder, timer, image_batch)
    finally:
        for r in runs:
            r.folder.flush()


def _serve(
    cfg: RunConfig,
    runs: list[_ProtocolRun],
    images: Iterator[tuple[Any, Any, Any]],
    progress: Any,
    embedder: _Embedder,
    timer: SessionTimer,
    image_batch: int,
) -> None:
    for batch in batched(timer.timed_pull(iter(images)), image_batch):
        readable = []
        for (sample, image, cache), wait in batch:
            times = timer.image(wait)
            if not isinstance(image, EvalsuiteError):
                readable.append((sample, image, cache, times))
                continue
            if not cfg.skip_bad:
                raise image
            for r in runs:  # an unreadable image is skipped and counted, for every protocol
                if sample.image_id not in r.done:
                    r.folder.append_image(
                        {"image_id": sample.image_id, "records": 0, "skipped": {SKIP_BAD_IMAGE: 1}}, []
                    )
                    r.logged += 1
            timer.end_image()
            progress.update(1)
        for sample, cache, times in embedder.embed(readable):  # the image set on the runner, in order
            for r in runs:  # one embedding serves every protocol of the run
                if sample.image_id in r.done:
                    continue
                t0, d0 = time.perf_counter(), r.timed.seconds
                # the proxy is a Runner by duck typing: it times predict() and forwards the rest
                records, stats = r.task.run_image(cast(Runner, r.timed), cache)
                row = {
                    "image_id": sample.image_id,
                    "records": len(records),
                    "skipped": dict(sorted(stats.items())),
                }
                r.folder.append_image(row, [rec.to_json() for rec in records])
                r.logged += 1
                spent = time.perf_counter() - t0
                decoder = r.timed.seconds - d0
                times.decoder[r.protocol.name] = decoder
                times.host[r.protocol.name] = spent - decoder
                r.seconds += spent
            timer.end_image()
            progress.update(1)


def _interrupted(runs: list[_ProtocolRun], total: int) -> Interrupted:
    """The line a Ctrl-C or SIGTERM ends with: how much is kept where, and how to go on."""
    kept = min(len(r.done) + r.logged for r in runs)
    folders = sorted({str(r.folder.location.parent) for r in runs if r.folder.location is not None})
    where = f" in {', '.join(folders)}" if folders else " (in memory: nothing is kept without out=)"
    return Interrupted(
        f"interrupted: {kept} of {total} images kept{where}; run the same command again to resume"
    )


class _Embedder:
    """Embeds images ``size`` at a time; on GPU out-of-memory, halves ``size`` for the rest of the run.

    A speed setting must not end a long run: a batch that does not fit is retried in halves (said on
    stderr, recorded in the run's ``execution``), down to one image, where the error is the user's to fix.
    """

    def __init__(self, runner: Runner, size: int, name: str, timer: SessionTimer) -> None:
        self.runner = runner
        self.size = size
        self.name = name
        self.timer = timer

    def embed(self, items: list[tuple[Any, Any, Any, Any]]) -> Iterator[tuple[Any, Any, Any]]:
        """(sample, cache, times) of each item, with that image set on the runner."""
        start = 0
        clock = self.timer.clock
        while start < len(items):
            chunk = items[start : start + self.size]
            t0 = clock.now()
            try:
                self.runner.set_images([image for _, image, _, _ in chunk])
            except torch.cuda.OutOfMemoryError:
                if self.size == 1:
                    raise EvalsuiteError(
                        f"{self.name}: the GPU ran out of memory embedding a single image",
                        hint="free the GPU of other work, or try --precision bf16",
                    ) from None
                self.size = max(1, self.size // 2)
                torch.cuda.empty_cache()
                tqdm.write(f"evalsuite: GPU out of memory: images per encoder pass lowered to {self.size}")
                continue
            per_image = (clock.now() - t0) / len(chunk)
            for k, (sample, _, cache, times) in enumerate(chunk):
                t1 = clock.now()
                self.runner.use_image(k)
                times.encoder = per_image + (clock.now() - t1)
                yield sample, cache, times
            start += len(chunk)


def _finish(
    ctx: RecordContext, name: str, r: _ProtocolRun, execution: dict[str, Any], timer: SessionTimer
) -> RunOutcome:
    """Fold every process's logs together, score them and write the run record (process 0)."""
    r.folder.consolidate()
    done, rows = r.folder.load_finished()
    if r.complete_at_start and r.folder.has_record():
        # nothing new: the existing record stands (re-running a finished command changes no file)
        return RunOutcome(r.protocol, r.folder.location, r.folder.read_record())
    if missing := [i for i in ctx.image_ids if i not in done]:
        raise EvalsuiteError(
            f"{r.folder.location}: {len(missing)} image(s) were not evaluated (first: {missing[0]})"
        )
    result, skipped = score(r.task, rows, done.values())
    for file_name, content in result.artifacts.items():
        r.folder.write_artifact(file_name, content)
    record = build_record(
        ctx,
        name,
        r.protocol,
        r.task,
        result,
        skipped,
        r.folder.config,
        {**execution, "protocol_s_this_session": round(r.seconds, 3)},
        timer.part(r.protocol.name),
    )
    record = r.folder.write_record(record)
    return RunOutcome(r.protocol, r.folder.location, record)
