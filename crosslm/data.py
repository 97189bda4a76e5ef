"""Real English text tasks that every machine has offline, and their federated split.

Tasks (all labels are reconstructed choices; the paper's datasets were not recovered):
- `topics`: paragraphs of the docstrings in CPython's standard library, labelled by library area
  (text, numbers, files, network, concurrency; `AREAS` maps top-level modules to areas);
- `docs-binary`: the `files` vs `network` areas of the same paragraphs (a binary task that is
  always available: no installable package ships labelled sentiment sentences offline);
- `polarity`: fastText-labelled sentences (`__label__pos text`), e.g. gensim's
  `pang_lee_polarity.cor` (200 Pang & Lee movie-review sentences); `path` may also name the
  gensim wheel, which is read as a zip without installing gensim.

Out-of-family text (`ood_task`): docstring paragraphs of third-party packages that a
paperbench install pulls in (requests, aiohttp, anyio, mpmath, pygments, fsspec ...) mapped to
the same areas. No training, selection or tuning step ever reads them.

Split (`federate`): a balanced test set and an oracle set are held out first; the rest is
spread over clients with a Dirichlet(beta) label skew and each client keeps
`private_per_client` examples.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.cache import cached_arrays
from shared.errors import DataError
from shared.fl import dirichlet_partition

__all__ = ["AREAS", "OOD_PACKAGES", "TextTask", "FederatedText", "docstring_paragraphs",
           "load_task", "load_polarity", "ood_task", "federate", "task_llm_excluded"]

# library area -> top-level stdlib modules (a hand-made, reconstructed mapping)
AREAS: dict[str, list[str]] = {
    "text": ["string", "re", "textwrap", "difflib", "codecs", "encodings", "html", "gettext",
             "locale", "stringprep", "shlex", "tokenize"],
    "numbers": ["decimal", "_pydecimal", "fractions", "statistics", "random", "numbers",
                "colorsys", "_pydatetime", "datetime", "calendar"],
    "files": ["os", "shutil", "pathlib", "glob", "fnmatch", "tempfile", "filecmp", "zipfile",
              "tarfile", "gzip", "bz2", "lzma", "_pyio", "io", "stat", "genericpath",
              "posixpath", "ntpath", "fileinput", "_compression", "zipimport", "shelve", "dbm"],
    "network": ["http", "urllib", "email", "smtplib", "imaplib", "poplib", "ftplib", "socket",
                "ssl", "socketserver", "xmlrpc", "mailbox", "nntplib", "ipaddress", "wsgiref",
                "webbrowser", "mimetypes"],
    "concurrency": ["asyncio", "threading", "multiprocessing", "concurrent", "queue", "sched",
                    "selectors", "subprocess", "_threading_local"],
}
# the label descriptions the server's prompts use (public task description, no private data)
DESCRIPTIONS = {
    "text": "Text processing: strings, regular expressions, encodings",
    "numbers": "Numbers and math: decimal arithmetic, fractions, statistics, random numbers",
    "files": "Files and directories: paths, archives, compression, file objects",
    "network": "Internet protocols: HTTP, URLs, email, sockets",
    "concurrency": "Concurrency: threads, processes, asyncio tasks, queues",
    "neg": "A negative movie review",
    "pos": "A positive movie review",
}
# out-of-family sources: third-party packages (installed with paperbench's dependencies)
OOD_PACKAGES: dict[str, list[str]] = {
    "text": ["markdown_it", "pygments", "jinja2", "regex"],
    "numbers": ["mpmath"],
    "files": ["fsspec", "filelock", "pathspec", "watchfiles"],
    "network": ["requests", "urllib3", "httpx", "aiohttp", "h11", "httpcore", "websockets"],
    "concurrency": ["anyio", "joblib"],
}
_VERSION = 2


@dataclass
class TextTask:
    texts: list[str]
    labels: np.ndarray  # (n,) int64 in [0, len(label_names))
    label_names: list[str]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def descriptions(self) -> list[str]:
        return [DESCRIPTIONS.get(n, n) for n in self.label_names]


@dataclass
class FederatedText:
    task: TextTask
    private: list[np.ndarray]  # per client: indices of its private training examples
    test: np.ndarray  # the shared balanced test set
    oracle: np.ndarray  # the oracle judge's training set (never given to the server)
    ood: TextTask | None  # out-of-family test text (same labels), or None

    @property
    def num_clients(self) -> int:
        return len(self.private)

    def texts(self, idx: np.ndarray) -> list[str]:
        return [self.task.texts[i] for i in idx]


def _paragraphs(source: str, max_chars: int) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            for para in re.split(r"\n\s*\n", doc or ""):
                t = " ".join(para.split())
                if len(t) >= 40 and ">>>" not in t:
                    out.append(t[:max_chars].rstrip())
    return out


def docstring_paragraphs(files: list[Path], max_chars: int) -> list[str]:
    """Docstring paragraphs (>= 40 characters, doctest-free, whitespace-normalised) of `files`,
    in file order, duplicates dropped."""
    seen, out = set(), []
    for f in files:
        try:
            src = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for t in _paragraphs(src, max_chars):
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def _stdlib_area_files() -> dict[str, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    top_to_area = {m: a for a, mods in AREAS.items() for m in mods}
    out: dict[str, list[Path]] = {a: [] for a in AREAS}
    for p in sorted(root.rglob("*.py"), key=lambda p: str(p.relative_to(root))):
        rel = p.relative_to(root)
        if {"test", "tests", "site-packages", "dist-packages", "idlelib"} & set(rel.parts):
            continue
        area = top_to_area.get(rel.parts[0].removesuffix(".py"))
        if area:
            out[area].append(p)
    return out


def task_llm_excluded() -> set[str]:
    """Top-level stdlib modules whose text the LLM's pretraining corpus leaves out (the task's
    sources), so that its starting task knowledge comes from other text only."""
    return {m for mods in AREAS.values() for m in mods}


def _balanced(texts_by_label: list[list[str]], cap: int, seed: int) -> tuple[list[str],
                                                                             np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for y, ts in enumerate(texts_by_label):
        pick = sorted(rng.permutation(len(ts))[:cap])
        texts += [ts[i] for i in pick]
        labels += [y] * len(pick)
    return texts, np.asarray(labels, dtype=np.int64)


def _arrays_task(name: str, areas: list[str], files: dict[str, list[Path]], cap: int,
                 max_chars: int, key: dict) -> TextTask:
    def build() -> dict[str, np.ndarray]:
        by_label = [docstring_paragraphs(files[a], max_chars) for a in areas]
        texts, labels = _balanced(by_label, cap, seed=0)
        return {"texts": np.asarray(texts, dtype=str), "labels": labels}

    arr = cached_arrays(f"crosslm-{name}", key, build, version=_VERSION)
    return TextTask([str(t) for t in arr["texts"]], arr["labels"].astype(np.int64), areas, name)


def load_polarity(path: str | Path, max_chars: int = 200) -> TextTask:
    """fastText-labelled sentences (`__label__<name> text` per line) from a text file or from
    the `gensim/test/test_data/pang_lee_polarity.cor` member of a gensim wheel."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"polarity file not found: {path}")
    if path.suffix == ".whl":
        member = "gensim/test/test_data/pang_lee_polarity.cor"
        try:
            with zipfile.ZipFile(path) as z:
                info = z.getinfo(member)
                if info.file_size > 64 << 20:
                    raise DataError(f"{path}: {member} is {info.file_size} bytes (too large)")
                raw = z.read(member)
        except (zipfile.BadZipFile, KeyError, OSError, RuntimeError, ValueError, EOFError) as e:
            raise DataError(f"{path}: not a gensim wheel holding {member} ({e})") from None
    else:
        if path.stat().st_size > 64 << 20:
            raise DataError(f"{path}: {path.stat().st_size} bytes is too large")
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the Pang & Lee files are Latin-1
        text = raw.decode("latin-1")
    names: dict[str, int] = {}
    texts, labels = [], []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        head, _, body = line.strip().partition(" ")
        if not head.startswith("__label__") or len(head) == len("__label__"):
            raise DataError(f"{path}: line {i} does not start with '__label__<name> '")
        body = " ".join(body.split())
        if not body:
            raise DataError(f"{path}: line {i} has a label but no text")
        texts.append(body[:max_chars])
        labels.append(names.setdefault(head[len("__label__"):], len(names)))
    if len(names) < 2:
        raise DataError(f"{path}: needs >= 2 labels, found {sorted(names) or 'none'}")
    counts = np.bincount(labels)
    if counts.min() < 10:
        raise DataError(f"{path}: label '{min(names, key=lambda n: counts[names[n]])}' has "
                        f"{counts.min()} sentences (need >= 10)")
    order = sorted(names, key=names.get)
    return TextTask(texts, np.asarray(labels, dtype=np.int64), order, "polarity")


def load_task(task: str, path: str = "", max_per_class: int = 400,
              max_chars: int = 200) -> TextTask:
    if task == "polarity":
        return load_polarity(path, max_chars)
    areas = list(AREAS) if task == "topics" else ["files", "network"]
    files = _stdlib_area_files()
    if any(not files[a] for a in areas):
        raise DataError(f"the standard library at {sysconfig.get_paths()['stdlib']} lacks the "
                        f"sources of area(s) {[a for a in areas if not files[a]]}")
    return _arrays_task(task, areas, files, max_per_class, max_chars,
                        {"areas": areas, "cap": max_per_class, "max_chars": max_chars})


def ood_task(task: TextTask, per_class: int, max_chars: int = 200) -> TextTask | None:
    """Out-of-family paragraphs with `task`'s labels (None for tasks without such a source, or
    when an area's packages are all missing)."""
    if per_class == 0 or not set(task.label_names) <= set(OOD_PACKAGES):
        return None
    files: dict[str, list[Path]] = {}
    for area in task.label_names:
        files[area] = []
        for mod in OOD_PACKAGES[area]:
            spec = importlib.util.find_spec(mod)
            if spec is None or not spec.origin:
                continue
            root = Path(spec.origin).parent
            files[area] += sorted(p for p in root.rglob("*.py")
                                  if not {"test", "tests"} & set(p.relative_to(root).parts))
        if not files[area]:
            return None
    key = {"areas": task.label_names, "cap": per_class, "max_chars": max_chars,
           "packages": {a: OOD_PACKAGES[a] for a in task.label_names}}
    ood = _arrays_task(f"{task.name}-ood", task.label_names, files, per_class, max_chars, key)
    return ood if np.bincount(ood.labels, minlength=task.num_classes).min() > 0 else None


def federate(task: TextTask, num_clients: int, beta: float, private_per_client: int,
             test_frac: float, oracle_frac: float, seed: int,
             ood: TextTask | None = None) -> FederatedText:
    """Hold out a stratified test and oracle set, then deal the rest over clients with a
    Dirichlet(beta) label skew; each client keeps `private_per_client` of its share."""
    rng = np.random.default_rng([seed, 7])
    test, oracle, pool = [], [], []
    for c in range(task.num_classes):
        idx = rng.permutation(np.flatnonzero(task.labels == c))
        n_test, n_or = int(round(test_frac * idx.size)), int(round(oracle_frac * idx.size))
        test.append(idx[:n_test])
        oracle.append(idx[n_test:n_test + n_or])
        pool.append(idx[n_test + n_or:])
    pool_idx = np.sort(np.concatenate(pool))
    if pool_idx.size < num_clients * private_per_client:
        raise DataError(f"task '{task.name}' leaves {pool_idx.size} examples for the clients, "
                        f"fewer than {num_clients} x private_per_client={private_per_client}")
    parts = dirichlet_partition(task.labels[pool_idx], num_clients, beta, seed,
                                min_size=private_per_client)
    private = [np.sort(rng.permutation(pool_idx[p])[:private_per_client]) for p in parts]
    return FederatedText(task, private, np.sort(np.concatenate(test)),
                         np.sort(np.concatenate(oracle)), ood)
