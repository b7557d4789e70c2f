"""Pose detection with MediaPipe on a real photo (scikit-image's astronaut)."""

import numpy as np
import pytest

from posedraw.errors import DetectionError
from posedraw.pose import JOINTS, JointState
from posedraw.pose.detect import MEDIAPIPE_INDEX, detect_pose, landmarks_to_pose

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut_pose():
    return detect_pose(skimage_data.astronaut(), source="astronaut")


def test_astronaut_head_and_shoulders_are_found_where_they_are(astronaut_pose):
    pose = astronaut_pose
    assert pose.canvas == (512.0, 512.0)
    for name in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"):
        assert pose.state[0, JOINTS.index(name)] == JointState.VISIBLE, name
    nose = pose.xy[0, JOINTS.index("nose")]
    assert 180 < nose[0] < 270 and 90 < nose[1] < 170  # her face, in the upper middle of the photo
    left, right = pose.xy[0, JOINTS.index("left_shoulder")], pose.xy[0, JOINTS.index("right_shoulder")]
    assert left[0] > right[0]  # facing the camera: her left shoulder is on the image's right
    assert left[1] > nose[1] + 60 and right[1] > nose[1] + 60


def test_legs_below_the_frame_are_absent_not_clamped(astronaut_pose):
    for name in ("left_ankle", "right_ankle", "left_knee", "right_knee"):
        assert astronaut_pose.state[0, JOINTS.index(name)] == JointState.ABSENT


def test_an_image_without_a_person_is_a_detection_error():
    with pytest.raises(DetectionError, match="blank: no person found"):
        detect_pose(np.zeros((128, 128, 3), np.uint8), source="blank")


def test_landmark_mapping_uses_visibility_for_the_state():
    landmarks = np.zeros((33, 3))
    for j, name in enumerate(JOINTS):
        landmarks[MEDIAPIPE_INDEX[name]] = (0.02 * j + 0.1, 0.5, 0.9 if j % 2 else 0.2)
    landmarks[MEDIAPIPE_INDEX["right_ankle"], 1] = 1.3  # below the image
    pose = landmarks_to_pose(landmarks, 200, 100)
    assert pose.xy[0, 1].tolist() == pytest.approx([24.0, 50.0])
    assert pose.state[0, 1] == JointState.VISIBLE and pose.state[0, 2] == JointState.OCCLUDED
    assert pose.state[0, JOINTS.index("right_ankle")] == JointState.ABSENT
    assert pose.confidence[0, 1] == pytest.approx(0.9)
