"""Confusion matrix, IoU and mIoU conventions on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipa_edge.metrics import class_accuracy, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy, summarize
from pipa_edge.train.metrics import ConfusionMeter, confusion_matrix_torch


def test_confusion_matrix_by_hand_numpy_and_torch_agree():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 1, 0]])
    # counted pixels (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,1); the 255 pixel is skipped
    want = np.array([[1, 1, 0], [0, 2, 0], [0, 1, 0]])
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 3), want)
    np.testing.assert_array_equal(confusion_matrix_torch(torch.from_numpy(pred), torch.from_numpy(gt), 3).numpy(), want)
    meter = ConfusionMeter(3)
    meter.update(torch.from_numpy(pred[:1]), torch.from_numpy(gt[:1]))
    meter.update(torch.from_numpy(pred[1:]), torch.from_numpy(gt[1:]))
    np.testing.assert_array_equal(meter.matrix(), want)


def test_iou_and_conventions_by_hand():
    # rows = GT, cols = prediction. GT class 0 has 3 pixels: 1 right, 1 taken as class 1, 1 as class 3.
    # class 3 is never in the GT but predicted once; class 4 is in neither GT nor prediction.
    cm = np.array([[1, 1, 0, 1, 0],
                   [0, 2, 0, 0, 0],
                   [0, 1, 0, 0, 0],
                   [0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0]])
    # IoU = TP / (TP + FP + FN): class 0: 1/(1+0+2); class 1: 2/(2+2+0); class 2: 0/1; class 3: 0/1; class 4: NaN
    iou = iou_per_class(cm)
    np.testing.assert_allclose(iou[:4], [1 / 3, 0.5, 0.0, 0.0])
    assert math.isnan(iou[4])
    assert mean_iou(cm) == pytest.approx((1 / 3 + 0.5 + 0.0) / 3)  # GT-present classes 0, 1, 2
    assert mean_iou(cm, "union") == pytest.approx((1 / 3 + 0.5 + 0.0 + 0.0) / 4)  # + predicted-only class 3
    assert mean_iou(cm, "all") == pytest.approx((1 / 3 + 0.5) / 5)
    assert pixel_accuracy(cm) == pytest.approx(3 / 6)
    acc = class_accuracy(cm)
    np.testing.assert_allclose(acc[:3], [1 / 3, 1.0, 0.0])
    assert math.isnan(acc[3])


def test_summarize_is_json_ready_and_ignores_out_of_range_labels():
    gt = np.array([0, 1, 1, 7, 255])
    pred = np.array([0, 1, 0, 1, 1])
    s = summarize(confusion_matrix(pred, gt, 2), ["a", "b"])
    assert s["pixels"] == 3  # 7 (out of range) and 255 skipped
    assert s["per_class_iou"] == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}
    assert s["classes_in_gt"] == ["a", "b"]
    assert s["miou"] == pytest.approx(0.5) and s["pixel_acc"] == pytest.approx(2 / 3)
    empty = summarize(np.zeros((2, 2), np.int64), ["a", "b"])
    assert empty["miou"] is None and empty["per_class_iou"]["a"] is None


def test_bad_prediction_index_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="present"):
        mean_iou(np.eye(2), "bogus")
