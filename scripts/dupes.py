"""Find repeated logic: runs of statements that are the same but for names.

Every run of ``MIN_LINES``+ source lines and ``MIN_STMTS``+ consecutive
statements inside a function is normalised — identifiers, attribute names
and constants replaced by placeholders, docstrings dropped — and hashed;
two places with the same hash repeat the same logic. Overlapping matches
are merged, so each pair of places is reported once with its longest
shared run. Imports and ``__all__`` are ignored (boilerplate).

    python scripts/dupes.py [--most N] [PATH ...]     (default: p2pshare tui)

Prints the pairs, longest first, and their count. Used for the closing
notes of issue 15 (``duplicates --most 40``); not a test.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
from collections import defaultdict
from pathlib import Path

MIN_LINES = 8
MIN_STMTS = 3  # one long statement (a literal, a call) is not logic


class _Normalise(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = "_"
        node.annotation = None
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        node.attr = "_"
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)


def _key(stmts: list[ast.stmt]) -> str:
    text = "\n".join(
        ast.dump(_Normalise().visit(ast.parse(ast.unparse(s)))) for s in stmts
    )
    return hashlib.sha1(text.encode()).hexdigest()


def _bodies(tree: ast.AST) -> list[list[ast.stmt]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef):
            continue  # constants and declarations, not logic
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                out.append(body)
    return out


def _boring(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True  # docstrings
    return isinstance(stmt, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets
    )


def find(paths: list[Path], min_lines: int = MIN_LINES) -> list[tuple[int, str, str]]:
    where: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for f in files:
            tree = ast.parse(f.read_text())
            for body in _bodies(tree):
                stmts = [s for s in body if not _boring(s)]
                for i in range(len(stmts)):
                    for j in range(i + 1, len(stmts) + 1):
                        end = stmts[j - 1].end_lineno or stmts[j - 1].lineno
                        lines = end - stmts[i].lineno + 1
                        if lines >= min_lines and j - i >= MIN_STMTS:
                            run = stmts[i:j]
                            where[_key(run)].append(
                                (str(f), stmts[i].lineno, stmts[j - 1].end_lineno or 0)
                            )
                            break
    pairs: dict[tuple[str, str], tuple[int, str, str]] = {}
    for places in where.values():
        uniq = sorted(set(places))
        for a in range(len(uniq)):
            for b in range(a + 1, len(uniq)):
                fa, sa, ea = uniq[a]
                fb, sb, eb = uniq[b]
                if fa == fb and sa <= eb and sb <= ea:
                    continue  # overlapping runs of one place
                size = ea - sa + 1
                key = (f"{fa}:{sa // 25}", f"{fb}:{sb // 25}")
                if key not in pairs or pairs[key][0] < size:
                    pairs[key] = (size, f"{fa}:{sa}-{ea}", f"{fb}:{sb}-{eb}")
    return sorted(pairs.values(), reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--most", type=int, default=40)
    ap.add_argument("--min-lines", type=int, default=MIN_LINES)
    ap.add_argument("paths", nargs="*", default=["p2pshare", "tui"])
    args = ap.parse_args()
    found = find([Path(p) for p in args.paths], args.min_lines)
    for size, a, b in found[: args.most]:
        print(f"{size:4d} lines  {a}  ~  {b}")
    print(f"{len(found)} repeated runs of {args.min_lines}+ lines")


if __name__ == "__main__":
    main()
