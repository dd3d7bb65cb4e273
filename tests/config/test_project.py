from atsboost.config.project import find_project
from atsboost.config.settings import load_settings


def test_the_project_is_found_upward_from_a_subfolder(tmp_path):
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    project = find_project(sub)
    assert project.root == tmp_path.resolve()
    assert project.alembic_ini == (tmp_path / "alembic.ini").resolve()


def test_a_pyproject_without_alembic_ini_uses_the_packaged_migrations(tmp_path):
    (tmp_path / "alembic.ini").write_text("[alembic]\n")  # above the project: not its own
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    project = find_project(app / "pkg")
    assert project.root == app.resolve()
    assert project.alembic_ini is None


def test_the_embedded_data_folder_is_anchored_to_the_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    at_top = load_settings({}, cwd=tmp_path)
    below = load_settings({}, cwd=sub)
    assert at_top.embedded_dir == below.embedded_dir == (tmp_path / ".atsboost").resolve()
    custom = load_settings({"ATSBOOST_EMBEDDED_DIR": "var/db"}, cwd=sub)
    assert custom.embedded_dir == (tmp_path / "var" / "db").resolve()


def test_the_migration_project_follows_the_same_search(tmp_path):
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert load_settings({}, cwd=sub).migration.alembic_ini == (tmp_path / "alembic.ini").resolve()
