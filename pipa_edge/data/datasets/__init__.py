"""File-based segmentation datasets, one module per dataset family."""

from pipa_edge.data.datasets.base import Record, SegDataset, read_image, read_label_raw
from pipa_edge.data.datasets.camvid import CamVidDataset
from pipa_edge.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID, CityscapesDataset, label_ids_to_train_ids
from pipa_edge.data.datasets.folder import FolderDataset, load_id_map
from pipa_edge.data.datasets.gta5 import GTA5Dataset
from pipa_edge.data.datasets.synthia import SYNTHIA_ID_TO_TRAIN_ID, SynthiaDataset

__all__ = ["Record", "SegDataset", "read_image", "read_label_raw", "CamVidDataset", "CityscapesDataset",
           "LABEL_ID_TO_TRAIN_ID", "label_ids_to_train_ids", "FolderDataset", "load_id_map", "GTA5Dataset",
           "SYNTHIA_ID_TO_TRAIN_ID", "SynthiaDataset"]
