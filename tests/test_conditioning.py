"""Pose encoders: output shapes, spatial locality of maps, the absent state, the null pose."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posedraw.data.ingest import to_square
from posedraw.errors import PoseError
from posedraw.models.conditioning import LegacyPoseEncoder, PlacedPoseEncoder, joint_maps, square_normalized
from posedraw.pose import JOINTS, JointState, Pose, render_heatmaps


def _pose(x: float = 32.0) -> Pose:
    xy = np.stack([np.linspace(20, 44, 17), np.linspace(8, 56, 17)], axis=1)
    xy[JOINTS.index("left_wrist")] = (x, 30.0)
    return Pose.single(xy, 64, 64)


@pytest.mark.parametrize(
    ("mode", "map_kind", "tokens", "channels"),
    [
        ("tokens", "heatmaps", 17, 0),
        ("maps", "heatmaps", 1, 17),
        ("maps", "skeleton", 1, 16),
        ("tokens+maps", "heatmaps", 17, 17),
    ],
)
def test_encoder_outputs(mode, map_kind, tokens, channels):
    torch.manual_seed(0)
    encoder = PlacedPoseEncoder(mode=mode, map_kind=map_kind, dim=32, latent_size=16)
    cond = encoder(**encoder.prepare([_pose(), _pose(40)]), latent_size=(16, 16))
    assert cond.context.shape == (2, tokens, 32) and encoder.map_channels == channels
    assert (cond.maps is None) == (channels == 0)
    if channels:
        assert cond.maps.shape == (2, channels, 16, 16)
    null = encoder.null(3, (16, 16))
    assert null.context.shape == (3, tokens, 32)
    if channels:
        assert null.maps.abs().max() == 0


def test_moving_one_joint_changes_only_nearby_map_values():
    encoder = PlacedPoseEncoder(mode="maps", latent_size=16)
    a = encoder(**encoder.prepare([_pose(32.0)])).maps[0]
    b = encoder(**encoder.prepare([_pose(40.0)])).maps[0]
    changed = (a - b).abs() > 1e-4
    wrist = JOINTS.index("left_wrist")
    assert changed.any(dim=(1, 2)).nonzero().flatten().tolist() == [wrist]
    rows, cols = changed[wrist].nonzero(as_tuple=True)
    # x 32 -> 40 px of 64 is column 8 -> 10 of 16; y 30 px is row 7.5: changes stay within a few cells
    assert cols.min() >= 4 and cols.max() <= 14 and rows.min() >= 3 and rows.max() <= 12


def test_the_absent_state_differs_from_every_position():
    torch.manual_seed(0)
    encoder = PlacedPoseEncoder(mode="tokens", dim=32)
    wrist = JOINTS.index("left_wrist")
    grid = torch.linspace(0, 1, 21)
    xy = torch.zeros(21 * 21, 17, 2)
    xy[:, wrist] = torch.cartesian_prod(grid, grid)
    placed = encoder(xy, torch.full((21 * 21, 17), 2)).context[:, wrist]
    state = torch.full((1, 17), 2)
    state[0, wrist] = JointState.ABSENT
    absent = encoder(torch.zeros(1, 17, 2), state).context[0, wrist]
    # an absent joint is not "a joint at (0, 0)" nor at any other position
    assert (placed - absent).norm(dim=-1).min() > 0.1 * absent.norm()
    other = encoder(torch.rand(1, 17, 2), state).context[0, wrist]
    assert torch.allclose(other, absent)  # and its position is ignored


def test_occluded_joints_are_half_height_in_heatmaps():
    xy = torch.tensor([[[0.5, 0.5]] * 17])
    state = torch.tensor([[2, 1] + [0] * 15])
    maps = joint_maps(xy, state, (16, 16), 1.0)
    assert maps[0, 0].max() == pytest.approx(2 * maps[0, 1].max()) and maps[0, 2:].max() == 0


def test_poses_without_joints_are_refused():
    encoder = PlacedPoseEncoder()
    empty = Pose.single(np.zeros((17, 2)), 64, 64, state=np.zeros(17))
    with pytest.raises(PoseError, match="at least one joint"):
        encoder.prepare([empty])


def _two_people() -> Pose:
    left, right = _pose(20.0), _pose(44.0)
    shift = np.array([[-12.0, 0.0]])
    return Pose.stack([left.replace(xy=left.xy + shift), right.replace(xy=right.xy - shift)])


def test_maps_hold_every_person_and_tokens_one_group_each():
    torch.manual_seed(0)
    encoder = PlacedPoseEncoder(mode="tokens+maps", dim=32, latent_size=16, max_people=3)
    pair = _two_people()
    cond = encoder(**encoder.prepare([pair]), latent_size=(16, 16))
    assert cond.context.shape == (1, 3 * 17, 32) and encoder.null(2, (16, 16)).context.shape == (2, 51, 32)
    nose = JOINTS.index("nose")
    for person in range(2):  # each person's nose peaks in the maps where that person's nose is
        x, y = pair.xy[person, nose] / 64 * 16
        assert cond.maps[0, nose, int(y), int(x)] > 0.5
    alone = [encoder(**encoder.prepare([pair.person(p)]), latent_size=(16, 16)) for p in range(2)]
    assert torch.allclose(cond.maps, torch.maximum(alone[0].maps, alone[1].maps))
    # the order of people in the file does not matter: groups go left to right
    swapped = Pose.stack([pair.person(1), pair.person(0)])
    assert torch.allclose(encoder(**encoder.prepare([swapped])).context, cond.context)
    # a second person changes the second token group, and the first group is the left person's
    assert torch.allclose(cond.context[0, :17], encoder(**encoder.prepare([pair.person(0)])).context[0, :17])
    assert not torch.allclose(cond.context[0, 17:34], alone[0].context[0, 17:34])


def test_more_people_than_the_model_draws_is_refused_not_dropped():
    one = PlacedPoseEncoder(mode="tokens+maps", max_people=1)
    with pytest.raises(PoseError, match="pose 0: this model draws one person, the pose has 2"):
        one.prepare([_two_people()])
    with pytest.raises(PoseError, match=r"the original \(legacy\) model draws one person, the pose has 2"):
        LegacyPoseEncoder().prepare([_two_people()])
    three = Pose.stack([_two_people(), _pose()])
    with pytest.raises(PoseError, match="at most 2 people, the pose has 3"):
        PlacedPoseEncoder(max_people=2).prepare([three])


def test_a_person_without_body_joints_is_not_drawn():
    nobody = Pose.single(np.zeros((17, 2)), 64, 64, state=np.zeros(17))
    encoder = PlacedPoseEncoder(mode="tokens", dim=32, max_people=1)
    with_ghost = encoder(**encoder.prepare([Pose.stack([nobody, _pose()])])).context
    assert torch.allclose(with_ghost, encoder(**encoder.prepare([_pose()])).context)


@pytest.mark.parametrize(("width", "height"), [(63, 64), (64, 61), (9, 4)])
def test_an_odd_margin_puts_joints_where_the_data_pipeline_pads_the_image(width, height):
    """An odd margin cannot be split evenly: the data pipeline pads the image (and its pose) with whole pixels,
    the extra one on the right or bottom. The encoders place a joint on the pixel the padded image shows it on,
    not half a pixel beside it."""
    x, y = 2, 1  # a marked pixel; the joint sits at its centre
    image = Image.new("RGB", (width, height))
    image.putpixel((x, y), (255, 255, 255))
    pose = Pose.single(np.full((17, 2), [x + 0.5, y + 0.5]), width, height)
    padded, padded_pose = to_square(image, pose)
    xy, _ = square_normalized(pose)
    column, row = (xy[0] * padded.width - 0.5).tolist()
    assert padded.getpixel((column, row)) == (255, 255, 255)  # raises for a half-pixel position
    np.testing.assert_allclose(xy * padded.width, padded_pose.xy[0], rtol=0, atol=1e-5)


def test_the_encoders_heatmaps_are_the_pose_renderers_heatmaps():
    """One Gaussian renderer: a square pose with visible joints gives the same maps through the pose encoder
    and through `render_heatmaps`."""
    pose = _pose()
    encoder = PlacedPoseEncoder(mode="maps", latent_size=16, sigma=1.3)
    maps = encoder(**encoder.prepare([pose])).maps[0]
    torch.testing.assert_close(maps, render_heatmaps(pose, 16, 16, sigma=1.3), rtol=0, atol=1e-6)
