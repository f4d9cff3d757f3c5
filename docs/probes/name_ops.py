"""Name a step profile's ops: which model ops each traced fusion or kernel comes from.

`step_profile.py` sums device time by the names the trace gives (`input_add_reduce_fusion_1`,
`loop_slice_fusion_11`, ...), which are the compiled HLO's instruction names with "." written as
"_". With `--hlo_dir` it also writes the compiled step's HLO. This reads both and prints, per
profiled op of one attention (largest first): its time per step, the instruction's shape and
kind, and the JAX op names (`metadata op_name`, the part after the last `jit(...)`) of the
instructions inside it, most frequent first, so "a reduce fusion" becomes e.g. "the LayerNorm
backward of the MLP branch": the model names its parts with `jax.named_scope` (block_<i>/attention,
attention_norm, attention_output_norm, mlp_norm, mlp; since 2026-12-05, twenty-first session).

  python docs/probes/name_ops.py PROFILE.jsonl HLO.txt.gz [--attention=sigmoid] [--steps=5]
      [--top=25]
"""

import argparse
import collections
import gzip
import json
import re

# A shape is one array (bf16[8,1024]{1,0}) or a tuple of them (multi-output fusions).
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%(\S+)\s*=\s*(\([^()]*\)|\S+)\s+([\w\-]+)\(")
_COMP = re.compile(r"^\s*(?:ENTRY\s+)?%(\S+)\s.*\{\s*$")
_CALLS = re.compile(r"calls=%([\w.\-]+)")
_KIND = re.compile(r"kind=(\w+)")
_OPNAME = re.compile(r'op_name="([^"]*)"')


def short_op_name(op_name: str) -> str:
    """The model-level part of a JAX op name: what follows the outermost `jit(...)/` prefix."""
    parts = op_name.split("/")
    return "/".join(p for p in parts[1:] if p) or op_name


def parse_hlo(text: str):
    """(instructions by trace name, op names per computation) of an HLO module's text."""
    instructions, per_comp = {}, collections.defaultdict(collections.Counter)
    comp = None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and "=" not in line.split("{")[0]:
            comp = m.group(1)
            continue
        m = _INSTR.match(line)
        if not m:
            continue
        name, shape, opcode = m.groups()
        op_name = _OPNAME.search(line)
        op_name = short_op_name(op_name.group(1)) if op_name else ""
        if comp is not None and op_name:
            per_comp[comp][op_name] += 1
        calls, kind = _CALLS.search(line), _KIND.search(line)
        instructions[name.replace(".", "_")] = {
            "shape": shape,
            "opcode": opcode,
            "kind": kind.group(1) if kind else "",
            "calls": calls.group(1) if calls else "",
            "op_name": op_name,
        }
    return instructions, per_comp


def describe(op: str, instructions, per_comp, width: int = 3) -> dict:
    """What the HLO says of one traced op (an instruction name, or a kernel's own name)."""
    instr = instructions.get(op)
    if instr is None:
        return {"hlo": "not an instruction of this module (a library or custom kernel's name)"}
    inside = per_comp.get(instr["calls"], collections.Counter())
    return {
        "shape": instr["shape"],
        "kind": instr["kind"] or instr["opcode"],
        "op_name": instr["op_name"],
        "inside": [f"{name} x{n}" for name, n in inside.most_common(width)],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile", help="step_profile.py's JSON lines")
    p.add_argument("hlo", help="step_<attention>.hlo.txt.gz from step_profile.py --hlo_dir")
    p.add_argument("--attention", default="sigmoid")
    p.add_argument("--steps", type=int, default=5, help="traced steps (step_profile's --steps)")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    opener = gzip.open if args.hlo.endswith(".gz") else open
    with opener(args.hlo, "rt") as f:
        instructions, per_comp = parse_hlo(f.read())
    rows = []
    for line in open(args.profile):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("attention") == args.attention and "op" in r:
            rows.append(r)
    rows.sort(key=lambda r: -r["ns"])
    for r in rows[: args.top]:
        rec = {"op": r["op"], "ms_per_step": round(r["ns"] / args.steps / 1e6, 3)}
        rec.update(describe(r["op"], instructions, per_comp))
        print(json.dumps(rec))


if __name__ == "__main__":
    main()
