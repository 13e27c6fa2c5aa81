"""The registry's one interface: models, versions, artifacts, metrics, aliases.

Rows live in SQL (SQLite or PostgreSQL, same code), files in the
content-addressed :class:`BlobStore`. Methods take and return plain
dataclasses; no ORM object escapes a session. Version numbers are allocated
under a lock on the model's row (``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent registrations never collide or
skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.registry.blobs import BlobStore
from jetfleet.controller.registry.db import default_db_url, jetfleet_home, make_engine, migrate
from jetfleet.controller.registry.refs import ModelRef, check_name
from jetfleet.controller.registry.schema import ARTIFACT_KINDS, Alias, Artifact, Metric, Model, ModelVersion

MAX_ARTIFACT_BYTES = 2 * 1024**3  # protobuf's ONNX limit without external data; larger files are refused


@dataclass(frozen=True)
class ArtifactInfo:
    kind: str
    sha256: str
    size: int
    details: dict[str, Any]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    value: float
    artifact_kind: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    status: str
    created_at: datetime
    architecture: str
    preprocess: dict[str, Any]
    tags: dict[str, Any]
    dataset: str
    dataset_fingerprint: str
    config: dict[str, Any]
    parent: str | None
    code_version: str
    aliases: tuple[str, ...]
    artifacts: tuple[ArtifactInfo, ...]
    metrics: tuple[MetricInfo, ...]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def artifact(self, kind: str) -> ArtifactInfo | None:
        return next((a for a in self.artifacts if a.kind == kind), None)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    description: str
    task: str
    versions: int
    latest: int | None
    aliases: dict[str, int]


@dataclass(frozen=True)
class NewArtifact:
    kind: str
    path: Path
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lineage:
    dataset: str = ""
    dataset_fingerprint: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None  # a model reference
    code_version: str = ""


class Registry:
    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, home: Path | None = None) -> Registry:
        """Open (and migrate to head) the registry at ``url``, blobs under ``home/blobs``."""
        home = home or jetfleet_home()
        engine = make_engine(url or default_db_url(home))
        migrate(engine)
        return cls(engine, BlobStore(home / "blobs"))

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- writing -----------------------------------------------------------------

    def register_version(
        self,
        name: str,
        artifacts: Iterable[NewArtifact] = (),
        preprocess: dict[str, Any] | None = None,
        architecture: str = "",
        lineage: Lineage | None = None,
        metrics: Iterable[MetricInfo] = (),
        tags: dict[str, Any] | None = None,
        description: str = "",
        labels: list[str] | None = None,
    ) -> VersionInfo:
        """Create the next version of ``name`` (creating the model if new) with its artifacts and metrics."""
        check_name("model", name)
        items = list(artifacts)
        _validate_artifacts(items)
        lineage = lineage or Lineage()
        with self._stored_blobs(items) as refs, self._tx() as s:
            model = self._model_for_update(s, name, description, labels)
            parent_id = self._version_row(s, ModelRef.parse(lineage.parent)).id if lineage.parent else None
            number = (
                s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)) or 0
            ) + 1
            row = ModelVersion(
                model_id=model.id,
                version=number,
                architecture=architecture,
                preprocess=preprocess or {},
                tags=tags or {},
                dataset=lineage.dataset,
                dataset_fingerprint=lineage.dataset_fingerprint,
                config=lineage.config,
                parent_id=parent_id,
                code_version=lineage.code_version,
            )
            s.add(row)
            s.flush()
            for item, (sha, size) in zip(items, refs, strict=True):
                s.add(Artifact(version_id=row.id, kind=item.kind, sha256=sha, size=size, details=item.details))
            for m in metrics:
                s.add(
                    Metric(
                        version_id=row.id, name=m.name, value=m.value, artifact_kind=m.artifact_kind, details=m.details
                    )
                )
            ref = ModelRef(name, number)
        return self.get(str(ref))

    def add_artifact(self, ref: str, item: NewArtifact, metrics: Iterable[MetricInfo] = ()) -> VersionInfo:
        """Attach (or replace) one artifact of an existing version, with metrics about it."""
        _validate_artifacts([item])
        with self._stored_blobs([item]) as refs, self._tx() as s:
            row = self._version_row(s, ModelRef.parse(ref))
            sha, size = refs[0]
            for old in [a for a in row.artifacts if a.kind == item.kind]:
                s.delete(old)
            for old in [m for m in row.metrics if m.artifact_kind == item.kind]:
                s.delete(old)
            s.flush()
            s.add(Artifact(version_id=row.id, kind=item.kind, sha256=sha, size=size, details=item.details))
            for m in metrics:
                s.add(
                    Metric(
                        version_id=row.id,
                        name=m.name,
                        value=m.value,
                        artifact_kind=m.artifact_kind or item.kind,
                        details=m.details,
                    )
                )
            key = f"{row.model.name}:{row.version}"
        return self.get(key)

    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo:
        """Point ``name@alias`` at ``version`` (moving it if it pointed elsewhere)."""
        check_name("alias", alias)
        with self._tx() as s:
            row = self._version_row(s, ModelRef(name, version))
            existing = s.get(Alias, (row.model_id, alias))
            if existing is None:
                s.add(Alias(model_id=row.model_id, name=alias, version_id=row.id))
            else:
                existing.version_id = row.id
        return self.get(f"{name}:{version}")

    def remove_alias(self, name: str, alias: str) -> None:
        with self._tx() as s:
            model = self._model_row(s, name)
            existing = s.get(Alias, (model.id, alias))
            if existing is None:
                raise JetfleetError(f"{name} has no alias {alias!r}")
            s.delete(existing)

    def update_version(self, ref: str, tags: dict[str, str | None], status: str | None = None) -> VersionInfo:
        """Merge ``tags`` into the version's tags (a ``None`` value removes the key); set ``status`` if given."""
        if status is not None:
            check_name("status", status)
        with self._tx() as s:
            row = self._version_row(s, ModelRef.parse(ref))
            merged = {**row.tags, **{k: v for k, v in tags.items() if v is not None}}
            row.tags = {k: v for k, v in merged.items() if tags.get(k, "") is not None}
            if status is not None:
                row.status = status
            key = f"{row.model.name}:{row.version}"
        return self.get(key)

    def delete_version(self, ref: str) -> VersionInfo:
        """Delete one version (its aliases go with it); blobs stay until :meth:`gc`."""
        info = self.get(ref)
        with self._tx() as s:
            s.delete(self._version_row(s, ModelRef(info.name, info.version)))
        return info

    def gc(self) -> list[str]:
        """Remove blobs no artifact references; return their digests."""
        with self._tx() as s:
            referenced = set(s.scalars(select(Artifact.sha256)))
        return self.blobs.gc(referenced)

    # -- reading -----------------------------------------------------------------

    def get(self, ref: str) -> VersionInfo:
        with self._tx() as s:
            return _version_info(self._version_row(s, ModelRef.parse(ref)))

    def list_models(self) -> list[ModelSummary]:
        with self._tx() as s:
            models = s.scalars(
                select(Model).options(selectinload(Model.versions), selectinload(Model.aliases)).order_by(Model.name)
            )
            return [_model_summary(m) for m in models]

    def list_versions(self, name: str) -> list[VersionInfo]:
        with self._tx() as s:
            return [_version_info(v) for v in self._model_row(s, name).versions]

    def blob_path(self, sha256: str) -> Path:
        return self.blobs.path(sha256)

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _stored_blobs(self, items: list[NewArtifact]) -> Iterator[list[tuple[str, int]]]:
        """Put files in the blob store; if the database write then fails, remove the blobs this call added."""
        added: list[str] = []
        refs = []
        for item in items:
            ref, created = self.blobs.add_file(item.path, max_size=MAX_ARTIFACT_BYTES)
            if created:
                added.append(ref.sha256)
            refs.append((ref.sha256, ref.size))
        try:
            yield refs
        except BaseException:
            with self._tx() as s:
                referenced = set(s.scalars(select(Artifact.sha256).where(Artifact.sha256.in_(added))))
            for sha in added:
                if sha not in referenced:
                    self.blobs.delete(sha)
            raise

    def _model_row(self, s: Session, name: str) -> Model:
        model = s.scalar(select(Model).where(Model.name == name))
        if model is None:
            raise JetfleetError(f"no model named {name!r} in the registry", hint="see `jetfleet models list`")
        return model

    def _model_for_update(self, s: Session, name: str, description: str, labels: list[str] | None) -> Model:
        """The model's row, created if missing, locked until the transaction ends."""
        stmt = select(Model).where(Model.name == name).with_for_update()
        model = s.scalar(stmt)
        if model is None:
            try:
                with s.begin_nested():
                    s.add(Model(name=name, description=description, labels=labels or []))
            except IntegrityError:
                pass  # another writer created it first: lock theirs
            model = s.scalar(stmt)
            assert model is not None
        return model

    def _version_row(self, s: Session, ref: ModelRef) -> ModelVersion:
        model = self._model_row(s, ref.name)
        if ref.alias is not None:
            alias = s.get(Alias, (model.id, ref.alias))
            if alias is None:
                known = ", ".join(sorted(a.name for a in model.aliases)) or "none"
                raise JetfleetError(f"{ref.name} has no alias {ref.alias!r} (aliases: {known})")
            return alias.version
        query = select(ModelVersion).where(ModelVersion.model_id == model.id)
        if ref.version is not None:
            row = s.scalar(query.where(ModelVersion.version == ref.version))
        else:
            row = s.scalar(query.order_by(ModelVersion.version.desc()).limit(1))
        if row is None:
            raise JetfleetError(f"{ref} does not exist", hint=f"see `jetfleet models show {ref.name}`")
        return row


def _validate_artifacts(items: list[NewArtifact]) -> None:
    kinds = [i.kind for i in items]
    for item in items:
        if item.kind not in ARTIFACT_KINDS:
            raise JetfleetError(f"unknown artifact kind {item.kind!r}; one of {', '.join(ARTIFACT_KINDS)}")
        if not item.path.is_file():
            raise JetfleetError(f"artifact file {item.path} does not exist")
        if item.path.stat().st_size > MAX_ARTIFACT_BYTES:
            raise JetfleetError(f"artifact {item.path} is larger than {MAX_ARTIFACT_BYTES:,} bytes")
    if len(set(kinds)) != len(kinds):
        raise JetfleetError(f"artifact kinds repeat: {kinds}")


def _version_info(row: ModelVersion) -> VersionInfo:
    parent = f"{row.model.name}:{p.version}" if (p := _parent(row)) else None
    return VersionInfo(
        name=row.model.name,
        version=row.version,
        status=row.status,
        created_at=row.created_at,
        architecture=row.architecture,
        preprocess=dict(row.preprocess),
        tags=dict(row.tags),
        dataset=row.dataset,
        dataset_fingerprint=row.dataset_fingerprint,
        config=dict(row.config),
        parent=parent,
        code_version=row.code_version,
        aliases=tuple(sorted(a.name for a in row.model.aliases if a.version_id == row.id)),
        artifacts=tuple(
            ArtifactInfo(a.kind, a.sha256, a.size, dict(a.details))
            for a in sorted(row.artifacts, key=lambda a: ARTIFACT_KINDS.index(a.kind))  # pipeline order
        ),
        metrics=tuple(MetricInfo(m.name, m.value, m.artifact_kind, dict(m.details)) for m in row.metrics),
    )


def _parent(row: ModelVersion) -> ModelVersion | None:
    if row.parent_id is None:
        return None
    return next((v for v in row.model.versions if v.id == row.parent_id), None)


def _model_summary(m: Model) -> ModelSummary:
    by_id = {v.id: v.version for v in m.versions}
    return ModelSummary(
        name=m.name,
        description=m.description,
        task=m.task,
        versions=len(m.versions),
        latest=max(by_id.values(), default=None),
        aliases={a.name: by_id[a.version_id] for a in m.aliases if a.version_id in by_id},
    )
