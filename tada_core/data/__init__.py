"""The data layer: domains by name, folder or image list; image decoding; transforms.

Modules: ``domains`` (load_domain), ``builtin`` (the built-in names), ``digits``, ``photos``,
``shift_pairs`` (localised-shift photo pairs with masks), ``artefacts`` (the marks they carry),
``shift_export`` (those pairs as folders with masks), ``folders``, ``archives``, ``images``,
``datasets``, ``transforms``, ``torchvision_sets``, ``emoji`` (the designer-style domains, built by
``tada data download emoji``).

Public API::

    from tada_core.data import load_domain, check_same_classes, DIGITS_NORM
    source = load_domain("mnist", image_size=28, norm=DIGITS_NORM, train=True)
    target = load_domain("path/to/Office31/webcam/images", image_size=28, norm=DIGITS_NORM, train=True)
    check_same_classes(source, target)  # DataError naming the classes only on one side

Images always come out as float32 ``(3, S, S)`` tensors, RGB order, normalised per channel as
``(x / 255 - mean) / std``; grey images are replicated to three channels.
"""

from tada_core.data.builtin import list_builtin_domains
from tada_core.data.domains import Domain, check_same_classes, load_domain
from tada_core.data.images import IMAGE_EXTENSIONS, load_image
from tada_core.data.transforms import DIGITS_NORM, IMAGENET_NORM, Norm, build_transform

__all__ = [
    "DIGITS_NORM",
    "IMAGENET_NORM",
    "IMAGE_EXTENSIONS",
    "Domain",
    "Norm",
    "build_transform",
    "check_same_classes",
    "list_builtin_domains",
    "load_domain",
    "load_image",
]
