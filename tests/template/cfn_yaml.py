"""Read a CloudFormation/SAM template, turning the short-form intrinsic tags into their
long forms (``!Ref X`` → ``{"Ref": "X"}``, ``!GetAtt X.Arn`` → ``{"Fn::GetAtt": ["X",
"Arn"]}``, ...).

Only the tags template.yaml may use are known (the local stack resolves exactly these);
any other tag is an error, so a test that loads the template also checks that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Short tag → long-form key.
TAGS = {
    "!Ref": "Ref",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
}


class CfnLoader(yaml.SafeLoader):
    """A safe loader that knows the tags of ``TAGS``."""


def _construct(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = "!" + tag_suffix
    key = TAGS.get(tag)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"intrinsic {tag} is not one the local stack resolves", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            resource, _, attribute = str(value).partition(".")
            value = [resource, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct)


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` with every intrinsic in its long form."""
    with path.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=CfnLoader)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a template is a mapping")
    return doc
