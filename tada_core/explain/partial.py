"""A labelled domain whose classes are some of a checkpoint's (partial domain adaptation).

A target with fewer classes than the source is a common real case (a kitchen camera sees no
motorcycles). Its labels index its own class list, so they are re-indexed to the checkpoint's by
class name; the checkpoint's classes that have no image are named as absent. A class name the
checkpoint does not have is still a clear error: the model cannot predict it.

    >>> domain, absent = match_classes(domain, info.class_names)   # labels now index info.class_names
    >>> absent
    ['motorcycle', 'person']
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from tada_core.data import Domain
from tada_core.errors import DataError


class Relabelled(Dataset):
    """``dataset`` with each label ``y`` replaced by ``mapping[y]``; ``labels`` holds them all."""

    def __init__(self, dataset: Dataset, labels: torch.Tensor, mapping: torch.Tensor) -> None:
        self.dataset, self.mapping = dataset, mapping
        self.labels = mapping[labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple:
        image, _ = self.dataset[index]
        return image, int(self.labels[index])


def match_classes(domain: Domain, class_names: list[str]) -> tuple[Domain, list[str]]:
    """``domain`` with its labels indexing ``class_names``, and the names of ``class_names`` with
    no image in it (in ``class_names`` order). An unlabelled domain is returned as it is.

    Raises:
        DataError: the domain has a class ``class_names`` lacks (or names one class twice).
    """
    if not domain.labelled:
        return domain, []
    unknown = [name for name in domain.class_names if name not in class_names]
    if unknown or len(set(domain.class_names)) != len(domain.class_names):
        raise DataError(
            f"the classes of '{domain.name}' are not the checkpoint's. Domain: {domain.class_names[:20]}; checkpoint: "
            f"{class_names[:20]}; only in the domain: {unknown[:20] or 'none (a class named twice)'}. A labelled "
            "domain may have fewer classes than the checkpoint, named as its (folder names or labels); to use it "
            "without its labels pass it as unlabelled: tada estimate … --unlabelled (labels='ignore' in Python, or "
            "a flat folder of images)"
        )
    labels = domain.labels
    present = set(torch.unique(labels).tolist())
    mapping = torch.tensor([class_names.index(name) for name in domain.class_names], dtype=torch.long)
    mapped = {int(mapping[y]) for y in present}
    absent = [name for i, name in enumerate(class_names) if i not in mapped]
    if domain.class_names == class_names:
        return domain, absent
    relabelled = Relabelled(domain.dataset, labels, mapping)
    return Domain(domain.name, list(class_names), relabelled, domain.skipped), absent
