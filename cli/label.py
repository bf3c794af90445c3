"""`lafin-aug label`: 68-point labels for every face in a folder of images, as a .pts + COCO dataset."""
from __future__ import annotations

import click

from lafin_aug.data import READERS, open_dataset
from lafin_aug.labelers import FACE_DETECTORS, LABELERS, LabelConfig, label_images, measure_labels
from lafin_aug.labelers.measure import combine

from .options import RegistryChoice


def _truth(value: str) -> tuple[str, str]:
    kind, sep, root = value.partition(":")
    if not sep or kind not in READERS or not root:
        raise click.BadParameter(f"{value!r}: expected KIND:PATH with KIND one of {', '.join(READERS.names())}",
                                 param_hint="--truth")
    return kind, root


@click.command("label")
@click.option("--images", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder of images (jpg/png/bmp/webp, any nesting).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: new, empty, or (with --resume) an earlier labelling.")
@click.option("--labeler", type=RegistryChoice(LABELERS), default="fan", show_default=True,
              help="fan: face-alignment's FAN-4 (local weights); dlib: dlib's 68-point predictor ([dlib] extra).")
@click.option("--detector", type=RegistryChoice(FACE_DETECTORS), default=None,
              help="Face detector: sfd (face-alignment's S3FD, local weights) or dlib (HOG).  "
                   "[default: sfd for fan, dlib for dlib]")
@click.option("--min-score", type=float, default=None,
              help="Reject detections scoring below this (dlib HOG: margin, ~0-3; sfd: 0-1).  "
                   "[default: the detector's own floor, dlib 0, sfd 0.5]")
@click.option("--min-face", type=int, default=40, show_default=True,
              help="Reject face boxes whose shorter side is below this many pixels.")
@click.option("--crop/--no-crop", default=False, show_default=True,
              help="Write LaFIn's square crop of each face (--size) instead of a copy of the image.")
@click.option("--size", type=int, default=256, show_default=True, help="Crop side with --crop.")
@click.option("--workers", type=int, default=1, show_default=True, help="joblib worker processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of the FAN and S3FD networks (dlib runs on the CPU).")
@click.option("--fan-weights", type=click.Path(dir_okay=False), default=None,
              help="FAN-4 state dict.  [default: $TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar]")
@click.option("--detector-weights", type=click.Path(dir_okay=False), default=None,
              help="S3FD state dict.  [default: $TORCH_HOME/hub/checkpoints/s3fd-619a316812.pth]")
@click.option("--resume", is_flag=True, help="Continue a labelling in --out, skipping the images already done.")
@click.option("--truth", "truths", multiple=True, metavar="KIND:PATH",
              help="Afterwards, compare with human annotations of the same images (e.g. coco:anno.json, "
                   "pts:DIR): faces found / missed and NME. Repeatable.")
def label_command(images, out, labeler, detector, min_score, min_face, crop, size, workers, device, fan_weights,
                  detector_weights, resume, truths) -> None:
    """Detect faces, predict 68 landmarks, filter, and write .pts + labels.json + label.csv (resumable)."""
    readers = [(value, open_dataset(*_truth(value))) for value in truths]
    config = LabelConfig(labeler=labeler, detector=detector, min_score=min_score, min_face=min_face, crop=crop,
                         size=size, workers=workers, device=device, fan_weights=fan_weights,
                         detector_weights=detector_weights)
    click.echo(str(label_images(images, out, config, resume=resume)))
    reports = measure_labels(out, readers) if readers else []
    for report in reports + ([combine("all", reports)] if len(reports) > 1 else []):
        click.echo(str(report))
