"""Object names from a bucket can never write outside the model's cache folder."""

import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.storage import safe_target


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", ""])
def test_names_that_leave_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ServingError) as e:
        safe_target(tmp_path, name)
    assert "leave the model folder" in e.value.message


def test_nested_names_stay_inside(tmp_path):
    assert safe_target(tmp_path, "variables/variables.index") == tmp_path.resolve() / "variables" / "variables.index"
