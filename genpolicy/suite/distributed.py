"""The suite's jobs as Ray tasks (``genpolicy bench ... --backend ray [--address ADDR]``; ``pip install
'genpolicy[ray]'``).

One task per job (:class:`~.plan.Job`) with declared resources; a run that loads a shared critic takes the critic's
task as an argument, so Ray starts it after the critic finished. Run folders live under the run root, which every
node must reach: a shared path or an fsspec URL (:class:`~.root.RunRoot`). A task whose worker process or node
dies is retried (``retries`` times) and, finding the run's checkpoint, resumes from it with the exact-resume code:
its final weights are an uninterrupted run's. An exception inside a run is not retried (it would fail again): the
other runs finish, and the runner ends with one line naming each failed run. Killed and started again, the
runner plans only what is not finished (:func:`~.runner.run_suite`), so it redoes nothing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .plan import Job, run_job
from .root import RunRoot
from .task import Task

__all__ = ["run_jobs_on_ray", "RUNTIME_ENV_VARS"]

RUNTIME_ENV_VARS = ("GENPOLICY_DATASETS", "GENPOLICY_PLUGINS", "GENPOLICY_SCRATCH")  # passed on to the workers


def _work(job: Job, root: RunRoot, threads: int, *after) -> dict:
    """One job in a Ray worker (``after``: the results of the jobs it waits for)."""
    import torch

    torch.set_num_threads(max(1, threads))
    s = run_job(job, root, progress=False)
    return {"folder": job.folder, "final_score": s.get("final_score"), "seconds": s.get("wall_seconds")}


def run_jobs_on_ray(jobs: list[Job], root: RunRoot, address: str | None = None, cpus: float = 1, gpus: float = 0,
                    retries: int = 3, progress: bool = True) -> list[dict]:
    """Run ``jobs`` as Ray tasks on the cluster at ``address`` (default: the one this process is connected to, else
    ``RAY_ADDRESS``, else a new one on this machine) and wait for all; returns their results in finishing order."""
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install 'genpolicy[ray]'") from None
    if not jobs:
        return []
    # a worker's working directory is not the driver's: every local path the jobs name becomes absolute
    root = RunRoot(root.url or root.local().absolute())
    for job in jobs:
        if Path(job.task.dataset).exists():
            job.task = Task(str(Path(job.task.dataset).absolute()), job.task.env)
    started = False
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in RUNTIME_ENV_VARS if k in os.environ}
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False)
        started = True
    try:
        task = ray.remote(_work).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=False)
        refs, names = {}, {}
        for job in jobs:
            after = [refs[job.critic]] if job.critic in refs else []
            refs[job.folder] = task.remote(job, root, int(cpus), *after)
            names[refs[job.folder]] = job.folder
        return _wait(ray, list(refs.values()), names, root, progress)
    finally:
        if started:
            ray.shutdown()


def _wait(ray, pending: list, names: dict, root: RunRoot, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    done, failed, t0 = [], [], time.time()
    with tqdm(total=len(pending), desc=f"runs on Ray ({root})", disable=not progress, unit="run") as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 -- reported below, the other runs go on
                    failed.append(f"{names[ref]}: {str(e).strip().splitlines()[-1][:300]}")
                    bar.write(f"failed: {failed[-1]}", file=sys.stderr)
                else:
                    done.append(res)
                    score = res["final_score"]
                    bar.write(f"{res['folder']}: done in {res['seconds']:.0f} s"
                              + ("" if score is None else f", final score {score:.1f}")
                              + f" ({len(done)}/{len(done) + len(failed) + len(pending)}, "
                                f"{time.time() - t0:.0f} s)")
                bar.update()
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed on Ray (the rest finished; the same command retries them): "
                           + "; ".join(failed))
    return done
