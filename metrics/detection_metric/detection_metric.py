"""Detection metric for real/fake image classifiers: ACC, R.Acc, F.Acc, AP and ROC-AUC, the columns of
AIGIBench's per-generator tables.

A local `evaluate` module: `evaluate.load("<repo>/metrics/detection_metric")` loads it offline, unlike
`evaluate.load("accuracy")`, which needs the Hub. Labels: 0 = real, 1 = fake; `scores` are P(fake).
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

_DESCRIPTION = """
Accuracy of the predictions given (`acc`; train.py decides at the model's threshold, 0.5 for PiN-CLIP), accuracy
on real images (`r_acc`) and on fake images (`f_acc`), average precision (`ap`) and ROC-AUC (`auc`) of the fake
score, as in the AIGIBench / GenImage tables, plus the number of images (`n`). AP and AUC need both classes: on a
single-class subset they are `None` and `note` says why; an accuracy over a class that is absent is `None` too.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels, 0 = real, 1 = fake.
    references (`list[int]`): true labels, 0 = real, 1 = fake.
    scores (`list[float]`): the fake score (e.g. P(fake)); ranks images for AP and AUC.
Returns:
    dict with `acc`, `r_acc`, `f_acc`, `ap`, `auc` (floats in [0, 1] or None), `n` (int) and `note` (str or None).
Example:
    >>> metric = evaluate.load("metrics/detection_metric")
    >>> metric.compute(predictions=[0, 1], references=[0, 1], scores=[0.1, 0.9])["acc"]
    1.0
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DetectionMetric(evaluate.Metric):
    """ACC / R.Acc / F.Acc / AP / AUC of a real-vs-fake detector, computed with scikit-learn."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "scores": datasets.Value("float64"),
                }
            ),
        )

    def _compute(self, predictions, references, scores) -> dict:
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        for name, values in (("references", references), ("predictions", predictions)):
            # another class would count in `acc` and in neither class's accuracy (and 1 would pass for "fake")
            unexpected = np.unique(values[(values != 0) & (values != 1)])
            if unexpected.size:
                raise ValueError(f"{name} must be 0 (real) or 1 (fake); found {unexpected[:5].tolist()}")
        if not np.isfinite(scores).all():
            raise ValueError(
                f"{int((~np.isfinite(scores)).sum())} of {scores.size} scores are NaN or infinite: the model's outputs "
                "are not numbers (did training diverge?)"
            )
        correct = predictions == references
        real, fake = references == 0, references == 1
        result = {
            "acc": _mean_or_none(correct),
            "r_acc": _mean_or_none(correct[real]),
            "f_acc": _mean_or_none(correct[fake]),
            "ap": None,
            "auc": None,
            "n": int(references.size),
            "note": None,
        }
        if real.any() and fake.any():
            result["ap"] = float(average_precision_score(references, scores))
            result["auc"] = float(roc_auc_score(references, scores))
        else:
            present = "only real images" if real.any() else "only fake images" if fake.any() else "no images"
            result["note"] = f"{present}: AP and AUC are undefined"
        return result


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None
