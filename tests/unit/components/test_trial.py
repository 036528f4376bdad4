"""The trial endpoint's name: apart from the production endpoint's, within Vertex AI's display-name limit."""

from components.trial import MAX_DISPLAY_NAME, trial_endpoint_name


def test_the_trial_endpoint_is_named_after_the_production_endpoint_and_never_equal_to_it():
    assert trial_endpoint_name("digits") == "trial-digits"
    longest = "e" * MAX_DISPLAY_NAME
    assert len(trial_endpoint_name(longest)) == MAX_DISPLAY_NAME and trial_endpoint_name(longest) != longest
