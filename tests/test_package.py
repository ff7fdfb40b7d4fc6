"""Package-level behaviour: the error without TensorFlow, the public modules."""
import subprocess
import sys


def test_import_without_tensorflow_names_the_extras():
    code = "import sys; sys.modules['tensorflow'] = None; import bert4keras_ext"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"KERAS_BACKEND": "tensorflow", "PATH": ""})
    assert result.returncode != 0
    assert "bert4keras_ext[cpu]" in result.stderr
    assert "bert4keras_ext[gpu]" in result.stderr and "bert4keras_ext[tpu]" in result.stderr


def test_shipped_text_cites_sources_not_internal_documents():
    """Docstrings and docs point at what a reader can open: papers and posts, not the team's
    specification or notes (which do not ship)."""
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1]
    files = [p for folder in ("bert4keras_ext", "examples", "pretraining", "docs")
             for p in (root / folder).rglob("*") if p.suffix in (".py", ".md")]
    files += [root / "README.md", root / "MIGRATION.md"]
    offending = [str(p.relative_to(root)) for p in files
                 if "SPEC" in p.read_text(encoding="utf-8")
                 or "KERAS3_NOTES" in p.read_text(encoding="utf-8")]
    assert offending == []
    modules = sorted((root / "bert4keras_ext").rglob("*.py"))
    undocumented = [str(p.relative_to(root)) for p in modules
                    if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert len(modules) > 40 and undocumented == []


def test_docs_index_links_every_technique_page():
    import re
    from pathlib import Path

    docs = Path(__file__).parents[1] / "docs"
    linked = set(re.findall(r"\]\(([^)]+\.md)\)", (docs / "README.md").read_text("utf-8")))
    pages = {str(p.relative_to(docs)) for p in docs.rglob("*.md")} - {"README.md"}
    assert linked == pages
    for page in (docs / "techniques").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert "**Tests" in text and "https://" in text, page.name
