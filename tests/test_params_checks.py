"""The static name tables params validation uses agree with the installed torchvision and with Prefect's cron."""

from __future__ import annotations

import pytest

from finetuner.params_checks import TORCHVISION_WEIGHTS, cron_problem
from finetuner.train.families import family_for


def test_weights_table_matches_the_installed_torchvision() -> None:
    import torchvision.models
    from torchvision.models import get_model_weights, list_models

    expected = {}
    for arch in list_models(module=torchvision.models):
        try:
            family_for(arch)
        except ValueError:
            continue
        expected[arch] = tuple(member.name for member in get_model_weights(arch))
    assert expected == TORCHVISION_WEIGHTS


@pytest.mark.parametrize(
    "expression",
    ["0 3 * * *", "30 1 * * 1-5", "*/15 0-6,22 * * *", "0 0 1 JAN MON", "5 4 * * SUN", "0 0 29 2 *", "0 12 * * 7"],
)
def test_cron_expressions_prefect_accepts_are_accepted(expression: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    CronSchedule(cron=expression)
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    "expression",
    ["61 3 * * *", "0 24 * * *", "0 3 0 * *", "0 3 * 13 *", "0 3 * * 8", "0 3 * *", "*/0 * * * *", "x 3 * * *"],
)
def test_cron_expressions_prefect_refuses_are_refused(expression: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    with pytest.raises(ValueError):
        CronSchedule(cron=expression)
    assert cron_problem(expression)
