"""What a trained model shows: per-image views, per-pair measurements, and the drawing of both.

    inference.py     predict_attention: prediction, w, m and the region views of a list of images
    result.py        AttentionResult (one image's results) and view_grid (reads one view from it)
    views.py         the per-region views (what each means, its range) and the colour scales
    gap.py           the domain-gap probes: K linear probes fitted after training on frozen fᵏ
    shift.py         a checkpoint's shift localiser: stored, cached beside it, or fitted on demand; status
    features.py      pooled features of a domain, t-SNE, proxy A-distance, mean attention of a domain
    alignment.py     do a class's target images sit on its source images? class-conditional MMD (the headline),
                     source-neighbour accuracy, each with its interval
    alignment_report.py  one checkpoint on a pair: features in both BatchNorm views, the measures, A-distances
    domain_stats.py  each domain normalised with its own BatchNorm statistics (as in training)
    estimate.py      a checkpoint's accuracy on an unlabelled domain, estimated (and the one stored at training)
    partial.py       a labelled domain with some of the checkpoint's classes: labels re-indexed, absent ones named
    familiarity.py   "is this upload far from everything the model was trained on?"
    geometry.py      from the model's square input back to the user's image (resize and crop undone)
    viz.py           overlays, attention and gap figures, PNG encoding (pure: arrays in, images out)
    viz_tsne.py      the t-SNE panels (coloured by domain and by class)
    card.py          a checkpoint's model card (markdown)

May import: ``errors``, ``config``, ``data``, ``model``, ``checkpoint``, ``training``. Never ``bench``,
``cli`` or the app.
"""
