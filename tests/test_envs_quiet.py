import subprocess
import sys


def test_importing_envs_and_connecting_prints_no_pybullet_banner():
    code = (
        "import sim2real.envs\n"
        "from sim2real.envs.world import World\n"
        "World().close()\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert "pybullet build time" not in result.stderr
    assert "argv[0]" not in result.stdout + result.stderr
