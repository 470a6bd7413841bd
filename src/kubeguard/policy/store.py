"""The policy directory: hand-written policies (top level) and what the agent learned (``learned/``).

    DIR/*.yaml                    WorkloadPolicy documents people write or `policy apply` puts there
    DIR/learned/<workload>.yaml   one per workload, written by the agent (atomic replace)
    DIR/learned/state.json        per workload: when its profile last changed (for promotion)

`PolicyStore.reload()` re-reads the files that changed. A malformed file is refused whole: its
previous contents (if any) stay in force and the error (file:line) is kept in `errors` for the
caller to report. Policies for workloads that have no pods yet are kept and apply when they appear.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.policy.document import PolicyError, WorkloadPolicy, dump_documents, load_file, merge

log = logging.getLogger(__name__)
LEARNED = "learned"
STATE = "state.json"


@dataclass
class _FileState:
    stamp: tuple[float, int]
    policies: list[WorkloadPolicy]


def file_name(ref: WorkloadRef) -> str:
    """``shop/Deployment/web`` -> ``shop.deployment.web.yaml``."""
    return f"{ref.namespace}.{ref.kind.lower()}.{ref.name}.yaml"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class PolicyStore:
    """Reads and writes one policy directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.learned_dir = directory / LEARNED
        self.user: dict[WorkloadRef, WorkloadPolicy] = {}
        self.learned: dict[WorkloadRef, WorkloadPolicy] = {}
        self.last_change: dict[WorkloadRef, float] = {}
        self.errors: dict[Path, str] = {}  # file -> its current problem
        self._files: dict[Path, _FileState] = {}

    # -- reading -------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the directory if needed and read everything (learned state included)."""
        try:
            self.learned_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PolicyError(f"{self.directory}:1: cannot create policy directory: {exc.strerror}") from exc
        for path in sorted(self.learned_dir.glob("*.yaml")):
            try:
                for policy in load_file(path):
                    self.learned[policy.workload] = policy
            except PolicyError as exc:
                self.errors[path] = str(exc)
        state = self.learned_dir / STATE
        if state.exists():
            try:
                data = json.loads(state.read_text())
                for key, stamp in (data.get("last_change") or {}).items():
                    self.last_change[WorkloadRef.parse(key)] = float(stamp)
            except (OSError, ValueError, AttributeError) as exc:
                self.errors[state] = f"{state}:1: ignored: {exc}"
        self.reload()

    def reload(self) -> list[str]:
        """Re-read changed top-level files; returns the new problems (one line each)."""
        problems: list[str] = []
        present = set()
        for path in sorted(self.directory.glob("*.y*ml")):
            present.add(path)
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime, st.st_size)
            known = self._files.get(path)
            if known is not None and known.stamp == stamp:
                continue
            try:
                policies = load_file(path)
            except PolicyError as exc:
                if self.errors.get(path) != str(exc):
                    problems.append(f"{exc} (refused; the previous policy stays in force)")
                self.errors[path] = str(exc)
                if known is not None:
                    known.stamp = stamp
                else:
                    self._files[path] = _FileState(stamp, [])
                continue
            self.errors.pop(path, None)
            self._files[path] = _FileState(stamp, policies)
        for gone in set(self._files) - present:
            del self._files[gone]
            self.errors.pop(gone, None)
        user: dict[WorkloadRef, WorkloadPolicy] = {}
        for path in sorted(self._files):
            for policy in self._files[path].policies:
                if policy.workload in user:
                    problems.append(f"{policy.source}: a second policy for {policy.workload} "
                                    f"(also {user[policy.workload].source}); this one wins")
                user[policy.workload] = policy
        self.user = user
        return problems

    def effective(self, ref: WorkloadRef) -> WorkloadPolicy | None:
        """The policy in force for a workload (learned + hand-written), None when neither exists."""
        return merge(self.learned.get(ref), self.user.get(ref))

    def workloads(self) -> list[WorkloadRef]:
        return sorted(set(self.learned) | set(self.user))

    # -- writing -------------------------------------------------------------------------------
    def save_learned(self, refs: set[WorkloadRef] | None = None) -> None:
        """Write the learned policies (all, or `refs`) and the promotion state."""
        for ref in sorted(refs if refs is not None else self.learned):
            policy = self.learned.get(ref)
            if policy is not None:
                write_atomic(self.learned_dir / file_name(ref), dump_documents([policy]))
        state = {"last_change": {str(ref): stamp for ref, stamp in sorted(self.last_change.items())}}
        write_atomic(self.learned_dir / STATE, json.dumps(state, indent=1) + "\n")

    def write_user(self, policy: WorkloadPolicy) -> Path:
        """Put a hand-written policy in the directory (replacing that workload's previous one)."""
        path = self.directory / file_name(policy.workload)
        for other, state in self._files.items():  # the workload's policy may live in another file
            if other != path and any(p.workload == policy.workload for p in state.policies):
                rest = [p for p in state.policies if p.workload != policy.workload]
                if rest:
                    write_atomic(other, dump_documents(rest))
                else:
                    other.unlink()
        write_atomic(path, dump_documents([policy]))
        self.reload()
        return path
