"""Model artifacts ↔ the model volume, as a Dagster IO manager over ``ModelStore``.

Each materialization stores a new version directory (never overwriting the
artifact a registry row may point at): ``<asset>/<partition>/<version>-<run>``,
where the version is the output's ``model_version`` metadata if the asset sets
it, else the UTC time, and ``<run>`` the first 8 characters of the run id. So
retraining a version that is already registered (or active) writes beside it:
the registry keeps pointing at complete, matching files until it is updated,
and a run killed mid-training leaves it untouched. The output metadata carries ``path``
(relative to the model root), ``sha256`` (of the manifest), the files and
their checksums. Loading an input takes the path and sha256 from the
upstream partition's latest materialization (falling back to the partition's
``LATEST.json`` pointer outside a Dagster instance) and verifies both.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from fraud_assets import settings
from fraud_assets.io.model_store import ArtifactRef, ModelIntegrityError, ModelStore

LATEST = "LATEST.json"


def _asset_name(context: dg.OutputContext | dg.InputContext) -> str:
    return "/".join(context.asset_key.path)


def _run_id(context: dg.OutputContext) -> str:
    try:
        return context.run_id
    except dg.DagsterInvariantViolationError:  # an output context built outside a run
        return uuid.uuid4().hex


class ModelIOManager(dg.ConfigurableIOManager):
    """Trained models, scalers and thresholds stored in their native formats, verified on load."""

    root: str = Field(
        default_factory=lambda: str(settings.model_dir()),
        description="The model volume (env FRAUD_MODEL_DIR).",
    )

    @property
    def store(self) -> ModelStore:
        return ModelStore(self.root)

    # -- output ----------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()} returned None; a model asset must return "
                "the trained artifact"
            )
        partition = self._single_partition(context)
        version = self._version(context)
        asset = _asset_name(context)
        directory = f"{version}-{_run_id(context)[:8]}"
        ref = self.store.save(obj, asset=asset, version=directory, partition=partition)
        self._write_latest(asset, partition, ref)
        manifest = self.store.verify(ref)
        files = manifest["files"]
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.text(ref.path),
                "sha256": dg.MetadataValue.text(ref.sha256),
                "version": dg.MetadataValue.text(version),
                "location": dg.MetadataValue.path(str(self.store.resolve(ref))),
                "class": dg.MetadataValue.text(manifest["class"]),
                "files": dg.MetadataValue.json(
                    {name: f"{f['sha256']} ({f['size']} bytes)" for name, f in files.items()}
                ),
                "size_bytes": sum(f["size"] for f in files.values()),
            }
        )

    @staticmethod
    def _single_partition(context: dg.OutputContext) -> str | None:
        if not context.has_asset_partitions:
            return None
        keys = context.asset_partition_keys
        if len(keys) != 1:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: a model artifact belongs to one partition, "
                f"but this run materializes {len(keys)}; run them one partition per run"
            )
        return keys[0]

    @staticmethod
    def _version(context: dg.OutputContext) -> str:
        for metadata in (context.output_metadata or {}, context.definition_metadata or {}):
            value = metadata.get("model_version")
            if value is not None:
                return str(getattr(value, "value", value))
        return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"

    def _latest_path(self, asset: str, partition: str | None) -> Path:
        relative = self.store.relative_path(asset=asset, version="x", partition=partition)
        return self.store.root / Path(relative).parent / LATEST

    def _write_latest(self, asset: str, partition: str | None, ref: ArtifactRef) -> None:
        path = self._latest_path(asset, partition)
        tmp = path.with_name(f".{LATEST}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(ref.to_dict()))
        os.replace(tmp, path)

    # -- input -----------------------------------------------------------------

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            loaded = {key: self._load(context, key) for key in keys}
            return loaded[keys[0]] if len(keys) == 1 else loaded
        return self._load(context, None)

    def _load(self, context: dg.InputContext, partition: str | None) -> Any:
        ref = self._materialized_ref(context, partition) or self._latest_ref(context, partition)
        return self.store.load(ref, expected_sha256=ref.sha256)

    @staticmethod
    def _materialized_ref(context: dg.InputContext, partition: str | None) -> ArtifactRef | None:
        try:
            instance = context.instance
        except dg.DagsterInvariantViolationError:  # an input context built outside a run
            return None
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=context.asset_key,
                asset_partitions=[partition] if partition is not None else None,
            ),
            limit=1,
        ).records
        if not records or records[0].asset_materialization is None:
            return None
        metadata = records[0].asset_materialization.metadata
        if "path" not in metadata or "sha256" not in metadata:
            return None
        return ArtifactRef(path=str(metadata["path"].value), sha256=str(metadata["sha256"].value))

    def _latest_ref(self, context: dg.InputContext, partition: str | None) -> ArtifactRef:
        path = self._latest_path(_asset_name(context), partition)
        if not path.is_file():
            where = f"partition {partition}" if partition else "(unpartitioned)"
            raise ModelIntegrityError(
                f"{context.asset_key.to_user_string()} {where} has no stored artifact under "
                f"{self.store.root}: materialize it first"
            )
        return ArtifactRef.from_dict(json.loads(path.read_text()))
