"""``genpolicy export RUN -o FILE.safetensors``: a deployable policy file (weights + normalizer + JSON, no pickle)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, name: str, text: str, argv: list[str]) -> None:
    ex = sub.add_parser(name, help=text, description=text + "; genpolicy.load_policy(FILE) reads it.")
    ex.add_argument("path", help="run folder or checkpoint file")
    ex.add_argument("-o", "--out", required=True, help="output file (.safetensors)")
    ex.add_argument("--checkpoint", default="best", help="in a run folder: best, final or a file name")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(ns) -> int:
    from ..export import export_policy
    from ..policy import pick_checkpoint

    out = Path(ns.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {out.name}")
    if out.exists() and not ns.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    file, why = pick_checkpoint(ns.path, ns.checkpoint)
    export_policy(file, out)
    print(f"wrote {out} from {file} ({why}); load it with genpolicy.load_policy({str(out)!r})")
    return 0
