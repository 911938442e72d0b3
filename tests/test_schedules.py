import pytest

from dglbs.schedules import ConstantSchedule, LinearSchedule, as_schedule, evaluate


def test_linear_schedule_interpolates_and_clamps_progress():
    schedule = LinearSchedule(0.2, 0.05)
    assert [schedule(p) for p in (0.0, 0.5, 1.0, 2.0, -1.0)] == pytest.approx([0.2, 0.125, 0.05, 0.05, 0.2])


def test_as_schedule_wraps_floats_and_keeps_callables():
    assert isinstance(as_schedule(0.3), ConstantSchedule) and as_schedule(0.3)(0.9) == 0.3
    function = lambda progress: 0.5 * progress  # noqa: E731
    assert as_schedule(function) is function


def test_schedule_errors_name_the_value():
    with pytest.raises(ValueError, match=r"start must be in \[0, 1\], got 1.5"):
        LinearSchedule(1.5, 0.0)
    with pytest.raises(ValueError, match=r"restart_prob must be in \[0, 1\], got -0.2"):
        as_schedule(-0.2)
    with pytest.raises(ValueError, match=r"at progress 0.5000: restart_prob must be in \[0, 1\], got 1.5"):
        evaluate(lambda progress: 3 * progress, 0.5)
