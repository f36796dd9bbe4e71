"""Downloading the public datasets (PhysioNet, Zenodo): catalogue, resumable checked
transfers, and the job the app queues to run one in the background (`download_job`)."""

from ecgcore.download.catalogue import CATALOGUE, CatalogueEntry, get_entry
from ecgcore.download.download_progress import Progress
from ecgcore.download.fetch import DownloadResult, download_dataset
from ecgcore.download.remote import DownloadStopped, OfflineError, TransferError
from ecgcore.download.verify_download import ChecksumError

__all__ = ["CATALOGUE", "CatalogueEntry", "ChecksumError", "DownloadResult", "DownloadStopped",
           "OfflineError", "Progress", "TransferError", "download_dataset", "get_entry"]
