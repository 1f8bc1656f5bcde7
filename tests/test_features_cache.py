"""The Features tab keeps the last few t-SNE views: the same request again is not recomputed."""

from __future__ import annotations

import app.tabs.features as features
from app.serving.context import AppContext
from app.serving.jobs import JobManager
from tests.test_app import make_checkpoints


def test_a_view_asked_for_again_comes_from_the_cache(tmp_path, monkeypatch):
    ctx = AppContext.create(
        data_dir=tmp_path / "runs", shipped_dir=make_checkpoints(tmp_path / "ship"), jobs=JobManager()
    )
    monkeypatch.setattr(features, "_views", features.ViewCache())
    calls = []
    embed = features.tsne_embed
    monkeypatch.setattr(features, "tsne_embed", lambda x, **kw: calls.append(len(x)) or embed(x, **kw))
    first = features.tsne_report(ctx, "tada_tiny", "(none)", "optdigits", "mnist", 20, 5, 0)
    both = features.tsne_report(ctx, "source_only_tiny", "tada_tiny", "optdigits", "mnist", 20, 5, 0)
    assert calls == [40, 40]  # tada_tiny once, source_only_tiny once
    assert both[3]["checkpoints"][1] == first[3]["checkpoints"][0]
    features.tsne_report(ctx, "tada_tiny", "(none)", "optdigits", "mnist", 20, 5, 1)  # another seed
    assert calls == [40, 40, 40]
