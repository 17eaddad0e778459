"""Dedup (issue 15, point 4): exact, then greedy ROUGE-L (rougeLsum, stemming, comments stripped)
on hand-made pairs on both sides of the threshold."""

import pytest

from multiplt.translation.dedup import RougeDedup, exact

BASE = "#lang racket\n(define (add_one xs)\n  (map (lambda (x) (+ x 1)) xs))\n"
RENAMED = "#lang racket\n(define (add_one xs)\n  (map (lambda (y) (+ y 1)) xs))\n"
OTHER = ("#lang racket\n(define (add_one xs)\n  (for/fold ([acc '()] #:result (reverse acc))\n"
         "            ([v (in-list xs)])\n    (cons (add1 v) acc)))\n")
SHORT_A = "(define (f x)\n  (+ x 1))\n"
SHORT_B = "(define (f y)\n  (+ y 1))\n"  # exactly 0.6 against SHORT_A


@pytest.fixture(scope="module")
def rouge():
    return RougeDedup(0.6)


def test_similarities_of_the_hand_made_pairs(rouge):
    assert rouge.similarity(BASE, BASE, "rkt") == 1.0
    assert rouge.similarity(BASE, RENAMED, "rkt") > 0.6
    assert rouge.similarity(BASE, OTHER, "rkt") < 0.6
    assert rouge.similarity(SHORT_A, SHORT_B, "rkt") == pytest.approx(0.6)


def test_comments_do_not_count(rouge):
    commented = ";; a long comment about lists and numbers and mapping\n" + OTHER
    assert rouge.similarity(BASE, commented, "rkt") == rouge.similarity(BASE, OTHER, "rkt")


def test_stemming_is_on(rouge):
    assert rouge.similarity("(counting items)", "(counts item)", "rkt") == 1.0


def test_greedy_drops_above_the_threshold_only(rouge):
    verdicts = rouge.greedy([(0, BASE), (1, RENAMED), (2, OTHER)], "rkt")
    assert [v.kept for v in verdicts] == [True, False, True]
    assert verdicts[1].duplicate_of == 0 and verdicts[1].score > 0.6
    # exactly at the threshold is kept (a drop needs F > threshold, as MultiPL-T)
    assert [v.kept for v in rouge.greedy([(0, SHORT_A), (1, SHORT_B)], "rkt")] == [True, True]
    assert [v.kept for v in RougeDedup(0.59).greedy([(0, SHORT_A), (1, SHORT_B)], "rkt")] == [True, False]
    # 1.0 keeps everything that is not identical
    assert all(v.kept for v in RougeDedup(1.0).greedy([(0, BASE), (1, RENAMED)], "rkt"))


def test_greedy_compares_with_kept_ones_only(rouge):
    a = "alpha beta gamma delta epsilon"
    b = "alpha beta gamma delta epsilon zeta eta theta"
    c = "delta epsilon zeta eta theta iota kappa"
    assert rouge.similarity(a, b, "lua") > 0.6 and rouge.similarity(b, c, "lua") > 0.6
    assert rouge.similarity(a, c, "lua") < 0.6
    verdicts = rouge.greedy([(0, a), (1, b), (2, c)], "lua")
    assert [v.kept for v in verdicts] == [True, False, True]  # c is not compared with dropped b


def test_exact_keeps_the_first_of_each_text():
    verdicts = exact([(3, "a"), (4, "b"), (5, "a"), (6, "a")])
    assert [(v.key, v.kept, v.duplicate_of) for v in verdicts] == [
        (3, True, None), (4, True, None), (5, False, 3), (6, False, 3)]


def test_absl_handler_is_pointed_at_the_interpreters_stderr(rouge):
    """rouge-score imports absl.logging; its handler must not keep (and, at logging.shutdown,
    close) whatever sys.stderr was when it was imported, e.g. a test's capture."""
    import sys

    from absl import logging as absl_logging

    assert absl_logging.get_absl_handler().python_handler.stream is sys.__stderr__


def test_the_cli_still_runs_under_capture_after_rouge(rouge, tmp_path, capsys):
    from multiplt import cli

    assert cli.main(["execute", "--in", str(tmp_path / "none"), "--allow-empty"]) == 0
    assert '"programs": {}' in capsys.readouterr().out
