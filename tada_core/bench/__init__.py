"""Benchmarks behind ``tada bench``: speed (train step), accuracy (digits suite), visualisation, localisation.

speed.py         train-step time of each variant
accuracy.py      the digits suite: variants × pairs × seeds; curves.py draws its learning curves
photos.py        the photo defaults on photos → photos-sketch: minutes and accuracy
viz.py           t-SNE implementations and the attention map's cost
planted.py       the digits pair with a checkerboard planted in known cells
localisation.py  every view and the baselines against known artefacts (digits and photo pairs)
scoring.py       cell ROC-AUC, AUC without clean neighbours, pointing game
baselines.py     a domain classifier's Grad-CAM, Grad-CAM++ and occlusion; centre prior, Sobel
styles.py        the designer-styles benchmark: 6 emoji style pairs × variants × seeds, a target oracle
label_shift.py   the accuracy estimate on subsets of labelled targets mixed unlike the source
"""
