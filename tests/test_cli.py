from sim2real.experiments.cli import build_parser, main


def test_help_lists_no_command_without_subcommand(capsys):
    assert main([]) == 2
    assert "usage: sim2real" in capsys.readouterr().out


def test_parser_builds():
    parser = build_parser()
    assert parser.prog == "sim2real"
