"""Training: the loop, one step, and what it needs around it.

    loop.py            train(config, callbacks=…) — the loop, read top to bottom; Callback, Run, TrainResult
    step.py            one optimisation step (forward over both domains, losses, backward, SGD), lr schedule
    sampling.py        endless, resumable batch streams (split across ranks when distributed)
    resume.py          what ``--resume`` restores and which config changes it refuses
    distributed.py     torchrun / DistributedDataParallel set-up and the all-reduce helpers
    evaluate.py        accuracy on a labelled domain (target labels are used only here)
    run_data.py        the run's four views of its data (source/target × train/eval)
    feature_cache.py   frozen-backbone mode: each image encoded once, the rest trained on the maps
    photo_defaults.py  the defaults that suit a few hundred photos on a CPU
    localiser_fit.py   the shift localiser's MIL fit on frozen tap maps (run after the last step)

May import: ``errors``, ``config``, ``data``, ``model``, ``checkpoint``. Never ``explain``, ``bench``,
``cli`` or the app.

    >>> from tada_core.training import train, Callback
    >>> result = train(config, callbacks=[Callback()])
"""

from tada_core.training.loop import LOSS_KEYS, Callback, Run, TrainingError, TrainResult, train

__all__ = ["LOSS_KEYS", "Callback", "Run", "TrainResult", "TrainingError", "train"]
