from __future__ import annotations

from jetfleet.controller.training.early_stopping import EarlyStopping


def test_stops_after_patience_epochs_without_improvement() -> None:
    es = EarlyStopping(patience=2, maximize=True)
    assert [es.update(v, i) for i, v in enumerate([0.5, 0.6, 0.6, 0.55])] == [True, True, False, False]
    assert es.should_stop and es.best == 0.6 and es.best_epoch == 1


def test_min_delta_and_minimize() -> None:
    es = EarlyStopping(patience=1, maximize=False, min_delta=0.1)
    es.update(1.0, 0)
    assert not es.update(0.95, 1) and es.should_stop


def test_zero_patience_never_stops_but_tracks_best() -> None:
    es = EarlyStopping(patience=0)
    for i, v in enumerate([0.9, 0.1, 0.1, 0.1]):
        es.update(v, i)
    assert not es.should_stop and es.best_epoch == 0


def test_state_round_trip() -> None:
    es = EarlyStopping(patience=3)
    es.update(0.4, 0)
    es.update(0.3, 1)
    again = EarlyStopping(patience=3)
    again.load_state_dict(es.state_dict())
    assert again == es
