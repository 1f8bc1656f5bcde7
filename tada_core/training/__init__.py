"""Training: the loop, one step, and what it needs around it.

    loop.py            train(config, callbacks=…) — the loop, read top to bottom; Callback, Run, TrainResult
    step.py            one optimisation step (forward over both domains, losses, backward, SGD), lr schedule
    sampling.py        endless, resumable batch streams (split across ranks when distributed)
    resume.py          what ``--resume`` restores and which config changes it refuses
    distributed.py     torchrun / DistributedDataParallel set-up and the all-reduce helpers
    evaluate.py        a model's outputs on a domain; accuracy on a labelled one (target labels are used only here)
    run_data.py        the run's four views of its data (source/target × train/eval), the held-out source split
    feature_cache.py   frozen-backbone mode: each image encoded once, the rest trained on the maps
    photo_defaults.py  the defaults that suit a few hundred photos on a CPU
    selection.py       the label-free criteria that choose ``best`` (default: the estimated target accuracy)
    batchnorm.py       a copy of a model with a dataset's own BatchNorm statistics (AdaBN)
    estimator.py       the accuracy estimate without target labels (PM-own): temperature, prior matching
    label_shift.py     the target's class mix without labels (EM), class-balanced BatchNorm weights
    ladder.py          the calibration ladder: the held-out source augmented at increasing severity
    calibration.py     calibrating the estimate on the held-out source and its ladder; estimating on a target
    baselines.py       AC, DoC, ATC and COT, recorded beside the estimate for comparison
    localiser_fit.py   the shift localiser's MIL fit on frozen tap maps (run after the last step)
    progress.py        each phase's progress (encode, steps, calibrate, localiser) and its time left

May import: ``errors``, ``config``, ``data``, ``model``, ``checkpoint``. Never ``explain``, ``bench``,
``cli`` or the app.

    >>> from tada_core.training import train, Callback
    >>> result = train(config, callbacks=[Callback()])
"""

from tada_core.training.loop import LOSS_KEYS, Callback, Run, TrainingError, TrainResult, train

__all__ = ["LOSS_KEYS", "Callback", "Run", "TrainResult", "TrainingError", "train"]
