"""Python API twin of ``pipa-edge bench``: :func:`bench` runs, prints and writes one benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipa_edge import log
from pipa_edge.bench.env import capture_env, describe_machine
from pipa_edge.errors import PipaError


def _expand(values: Sequence[str] | None) -> list[str]:
    """``["onnxruntime,torch", "trt"]`` → ``["onnxruntime", "torch", "trt"]``."""
    out: list[str] = []
    for v in values or ():
        out += [p.strip() for p in str(v).split(",") if p.strip()]
    return out


def bench(models: Sequence[str], backends: Sequence[str] | None = None, imgsz: Sequence[str] | None = None,
          *, iters: int = 100, warmup: int | None = None, warmup_s: float = 30.0, batch: int = 1, rounds: int = 5,
          device: str = "cpu", threads: int | None = None, e2e: str | None = None, e2e_frames: int = 100,
          train: bool = False, train_arch: str | None = None, train_imgsz: str | None = None, train_batch: int = 2,
          train_iters: int = 10, adapt_set: Sequence[str] = (), out_dir: str | Path = "runs/bench",
          name: str = "bench", progress: bool = True, console=None, command: str | None = None) -> dict:
    """Latency table for every MODEL × backend × resolution (interleaved), optional per-stage
    end-to-end run (``e2e``) and training-step benchmark (``train``); writes JSON/CSV/PNG.

    Returns the JSON payload plus ``"files"`` (paths written).
    """
    from pipa_edge.bench.latency import _is_arch, open_case, parse_imgsz
    from pipa_edge.bench.report import print_table, write_all

    if not models and not train:
        raise PipaError("bench: give at least one MODEL (a .pt/.onnx/.engine/.xml file or an arch such as "
                        "segformer-b0), or --train")
    sizes = [parse_imgsz(s) for s in _expand(imgsz)] or [None]
    bks = _expand(backends) or [None]
    env = capture_env()
    payload: dict = {"command": command, "machine": describe_machine(env), "env": env, "results": []}
    cases, opened = [], []
    try:
        for m in models:
            resizable = _is_arch(m) or Path(m).suffix.lower() in (".pt", ".pth", ".ckpt")
            if not resizable and sizes != [None]:
                log.warn("bench", f"{m}: an exported file has a fixed input size; --imgsz is ignored for it")
            for b in bks:
                for hw in (sizes if resizable else [None]):
                    log.stage("bench", f"open {m}" + (f" with {b}" if b else "") + (f" at {hw[0]}x{hw[1]}" if hw else ""))
                    case = open_case(m, b, hw, device=device, threads=threads, workdir=Path(out_dir) / "models")
                    opened.append(case)
                    cases.append(case)
        if cases:
            from pipa_edge.bench.latency import bench_cases

            results = bench_cases(cases, iters=iters, warmup=warmup, warmup_s=warmup_s, batch=batch, rounds=rounds,
                                  progress=progress)
            payload["results"] = [r.to_dict() for r in results]
            for r in results:
                for w in r.warnings:
                    log.warn("bench", f"{r.key}: {w}")
            print_table(payload["results"], title=f"pipa-edge bench ({payload['machine']})", console=console)
        if e2e:
            from pipa_edge.bench.stages import bench_stages, print_stages

            if not cases:
                raise PipaError("--e2e needs a MODEL")
            payload["e2e"] = bench_stages(e2e, cases[0].backend, max_frames=e2e_frames,
                                          workdir=Path(out_dir) / "e2e")
            print_stages(payload["e2e"], console=console)
        if train:
            from pipa_edge.bench.train_step import bench_train_step, default_adapt_config, print_train

            arch = train_arch or next((m for m in models if _is_arch(m)), "segformer-b0")
            hw = parse_imgsz(train_imgsz) if train_imgsz else (256, 256)
            payload["train"] = bench_train_step(arch, batch=train_batch, imgsz=hw, iters=train_iters, device=device,
                                                adapt_cfg=default_adapt_config(adapt_set))
            print_train(payload["train"], console=console)
    finally:
        for c in opened:
            c.backend.close()
    files = write_all(out_dir, payload, stem=name)
    payload["files"] = {k: str(v) for k, v in files.items()}
    log.ok("bench", "wrote " + ", ".join(str(v) for v in files.values()))
    if len(files) > 1:
        log.next_command(f"pipa-edge bench --compare {files['json']} AFTER.json")
    return payload
