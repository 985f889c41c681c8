"""Checks for the project's own RIVTA contract definitions in contracts/.

The schemas and WSDLs in contracts/ are written by this project. They must define
exactly the same XML vocabularies as the national (Inera) definitions, which live
outside the repository in the reference pack (../shared/reference/rivta relative to
the repository root) and are only read here, never copied.

What is checked:

1. Every XSD under contracts/ compiles with lxml, every WSDL parses, every
   schemaLocation resolves, the embedded WSDL schema compiles, file names are unique.
2. Equivalence with the national definitions, three ways:
   a. sample documents (tests/contracts/samples/<Contract>_<version>/): each one is
      validated against the official and against our Responder schema; both must give
      the same verdict, and that verdict must match the file name prefix
      (valid_* / invalid_*);
   b. a component-by-component comparison of the two schema sets (every global
      element, complex type and simple type of every namespace reachable from the
      Responder schema: element names and namespaces, order, cardinalities, types,
      enumerations, patterns, wildcards);
   c. a comparison of the WSDL definitions (namespaces, messages and parts, portType,
      binding incl. soapAction and LogicalAddress header, service, port address).
3. The "rich" samples together use every element declaration reachable from the
   contract's request and response elements at least once.

Only lxml and pytest are used. Tests that need the reference pack are skipped (with a
reason) when it is not present.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import pytest
from lxml import etree

from adapter.rivta.contracts import CONTRACTS as SERVED

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
CORE_DIR = CONTRACTS_DIR / "core_components"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
REFERENCE_DIR = (REPO_ROOT / ".." / "shared" / "reference").resolve()
RIVTA_DIR = REFERENCE_DIR / "rivta"

XS_NS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"
XS = f"{{{XS_NS}}}"
WSDL = f"{{{WSDL_NS}}}"

# (contract, version): the official folder is rivta/<contract>/<version>/ in the pack.
# (contract, version) of every contract the adapter serves (the registry).
CONTRACTS = [(c.name, c.version) for c in SERVED]
CONTRACT_IDS = [f"{name}_{version}" for name, version in CONTRACTS]

# Under CI (CI=true) the reference pack is always beside the clone: a missing pack fails instead of skipping.
needs_reference = pytest.mark.skipif(not RIVTA_DIR.is_dir() and os.environ.get("CI") != "true",
                                     reason=f"reference pack not found at {RIVTA_DIR}")


# ---------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------
def our_responder(name: str, version: str) -> Path:
    return CONTRACTS_DIR / name / version / f"{name}Responder_{version}.xsd"


def our_wsdl(name: str, version: str) -> Path:
    return CONTRACTS_DIR / name / version / f"{name}Interaction_{version}_RIVTABP21.wsdl"


def official_interaction_dir(name: str, version: str) -> Path:
    return RIVTA_DIR / name / version / "interactions" / f"{name}Interaction"


def official_responder(name: str, version: str) -> Path:
    return official_interaction_dir(name, version) / f"{name}Responder_{version}.xsd"


def official_wsdl(name: str, version: str) -> Path:
    return official_interaction_dir(name, version) / f"{name}Interaction_{version}_RIVTABP21.wsdl"


OUR_REGISTRY = CORE_DIR / "itintegration_registry_v1.xsd"
OFFICIAL_REGISTRY = RIVTA_DIR / "GetDiagnosis" / "2.0" / "core_components" / "itintegration_registry_1.0.xsd"


def all_files(suffix: str) -> list[Path]:
    return sorted(CONTRACTS_DIR.rglob(f"*{suffix}"))


@functools.cache
def load_schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path))


def verdict(schema_path: Path, doc: etree._ElementTree) -> tuple[bool, str]:
    schema = load_schema(str(schema_path))
    ok = schema.validate(doc)
    return ok, "; ".join(str(e) for e in schema.error_log)


def schema_locations(root: etree._Element) -> list[etree._Element]:
    return [el for el in root.iter(f"{XS}import", f"{XS}include", f"{XS}redefine") if el.get("schemaLocation")]


# ---------------------------------------------------------------------------------------
# 1. well-formedness, compilation, references, layout
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("xsd", all_files(".xsd"), ids=lambda p: str(p.relative_to(CONTRACTS_DIR)))
def test_xsd_compiles(xsd: Path) -> None:
    etree.XMLSchema(etree.parse(str(xsd)))


@pytest.mark.parametrize("xsd", all_files(".xsd"), ids=lambda p: str(p.relative_to(CONTRACTS_DIR)))
def test_xsd_references_resolve(xsd: Path) -> None:
    root = etree.parse(str(xsd)).getroot()
    for ref in schema_locations(root):
        location = ref.get("schemaLocation")
        assert "://" not in location and not location.startswith("/"), f"{location} must be relative"
        target = (xsd.parent / location).resolve()
        assert target.is_file(), f"{xsd.name}: {location} does not exist"
        assert CONTRACTS_DIR in target.parents, f"{xsd.name}: {location} points outside contracts/"
        target_ns = etree.parse(str(target)).getroot().get("targetNamespace")
        if etree.QName(ref).localname == "import":
            assert ref.get("namespace") == target_ns, f"{xsd.name}: import namespace mismatch for {location}"
        else:
            assert target_ns == root.get("targetNamespace"), f"{xsd.name}: include namespace mismatch"


@pytest.mark.parametrize("wsdl", all_files(".wsdl"), ids=lambda p: str(p.relative_to(CONTRACTS_DIR)))
def test_wsdl_parses_and_references_resolve(wsdl: Path) -> None:
    root = etree.parse(str(wsdl)).getroot()
    assert root.tag == f"{WSDL}definitions"
    schemas = root.findall(f"{WSDL}types/{XS}schema")
    assert len(schemas) == 1
    refs = schema_locations(root)
    assert refs, "the WSDL must import its schemas"
    for ref in refs:
        location = ref.get("schemaLocation")
        assert "://" not in location and not location.startswith("/")
        target = (wsdl.parent / location).resolve()
        assert target.is_file(), f"{wsdl.name}: {location} does not exist"
        assert ref.get("namespace") == etree.parse(str(target)).getroot().get("targetNamespace")
    for imp in root.iter(f"{WSDL}import"):
        assert (wsdl.parent / imp.get("location")).resolve().is_file()
    # the embedded schema compiles, and through it the LogicalAddress header validates
    types_schema = etree.XMLSchema(schemas[0])
    header = etree.fromstring(f'<LogicalAddress xmlns="{REGISTRY_NS}">SE2321000016-A1B2</LogicalAddress>')
    assert types_schema.validate(header), types_schema.error_log


def test_file_names_unique() -> None:
    names = [p.name for p in CONTRACTS_DIR.rglob("*") if p.is_file()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, duplicates


@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_contract_layout(name: str, version: str) -> None:
    folder = CONTRACTS_DIR / name / version
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [our_responder(name, version).name, our_wsdl(name, version).name]
    )


def test_readme_present() -> None:
    assert (CONTRACTS_DIR / "README.md").is_file()


@needs_reference
def test_no_reference_file_copied() -> None:
    """The reference pack is read-only reference material: nothing may be copied from it."""
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    reference = {digest(p) for p in RIVTA_DIR.rglob("*") if p.is_file() and p.suffix in (".xsd", ".wsdl")}
    for path in CONTRACTS_DIR.rglob("*"):
        if path.is_file():
            assert digest(path) not in reference, f"{path} is a byte copy of a reference file"
            text = path.read_text(encoding="utf-8")
            assert "Apache Software Foundation" not in text, f"{path} carries a copied license header"


# ---------------------------------------------------------------------------------------
# 2a. sample documents: same verdict as the official schema
# ---------------------------------------------------------------------------------------
def sample_cases() -> list:
    cases = []
    for name, version in CONTRACTS:
        for sample in sorted((SAMPLES_DIR / f"{name}_{version}").glob("*.xml")):
            cases.append(pytest.param(name, version, sample, id=f"{name}_{version}/{sample.stem}"))
    return cases


def expected_verdict(sample: Path) -> bool:
    prefix = sample.stem.split("_", 1)[0]
    assert prefix in ("valid", "invalid"), f"{sample.name}: name must start with valid_ or invalid_"
    return prefix == "valid"


@needs_reference
@pytest.mark.parametrize(("name", "version", "sample"), sample_cases())
def test_sample_same_verdict_as_official(name: str, version: str, sample: Path) -> None:
    doc = etree.parse(str(sample))
    ours, our_errors = verdict(our_responder(name, version), doc)
    official, official_errors = verdict(official_responder(name, version), doc)
    assert ours == official, f"verdicts differ: ours={ours} ({our_errors}) official={official} ({official_errors})"
    assert ours == expected_verdict(sample), f"sample is mislabelled: {our_errors or 'valid'}"


@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_sample_set_complete(name: str, version: str) -> None:
    stems = {p.stem for p in (SAMPLES_DIR / f"{name}_{version}").glob("*.xml")}
    for required in ("valid_request_minimal", "valid_request_rich", "valid_response_minimal", "valid_response_rich"):
        assert required in stems
    for kind in ("request", "response"):
        assert len([s for s in stems if s.startswith(f"invalid_{kind}_")]) >= 5, kind
    # the categories asked for: wrong order, missing required, bad enum/value,
    # wrong namespace, unknown element in our own namespace
    for marker in ("wrong_order", "missing", "bad_", "namespace", "unknown_element_own_namespace"):
        assert any(s.startswith("invalid_") and marker in s for s in stems), marker


def registry_cases() -> list:
    return [pytest.param(p, id=p.stem) for p in sorted((SAMPLES_DIR / "registry").glob("*.xml"))]


@needs_reference
@pytest.mark.parametrize("sample", registry_cases())
def test_registry_sample_same_verdict_as_official(sample: Path) -> None:
    doc = etree.parse(str(sample))
    ours, our_errors = verdict(OUR_REGISTRY, doc)
    official, official_errors = verdict(OFFICIAL_REGISTRY, doc)
    assert ours == official, f"ours={ours} ({our_errors}) official={official} ({official_errors})"
    assert ours == expected_verdict(sample), our_errors


# ---------------------------------------------------------------------------------------
# 2b. component-by-component comparison of the schema sets
# ---------------------------------------------------------------------------------------
def resolve_qname(el: etree._Element, value: str) -> tuple[str | None, str]:
    prefix, _, local = value.rpartition(":")
    namespace = el.nsmap.get(prefix or None)
    if prefix and namespace is None:
        raise AssertionError(f"undeclared prefix in {value!r}")
    return namespace, local


def schema_documents(entry: Path) -> dict[Path, etree._Element]:
    """All schema documents reachable from entry through import/include."""
    documents: dict[Path, etree._Element] = {}
    pending = [entry.resolve()]
    while pending:
        path = pending.pop()
        if path in documents:
            continue
        root = etree.parse(str(path)).getroot()
        documents[path] = root
        pending.extend((path.parent / ref.get("schemaLocation")).resolve() for ref in schema_locations(root))
    return documents


def xs_children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and c.tag != f"{XS}annotation"]


def occurs(el: etree._Element) -> tuple[int, int | str]:
    maximum = el.get("maxOccurs", "1")
    return int(el.get("minOccurs", "1")), maximum if maximum == "unbounded" else int(maximum)


_PLAIN_ELEMENT_ATTRS = {"name", "type", "ref", "minOccurs", "maxOccurs", "form"}


class Canonicaliser:
    """Turns schema components into comparable tuples (annotations and prefixes ignored)."""

    def __init__(self, root: etree._Element) -> None:
        self.tns = root.get("targetNamespace")
        self.element_form = root.get("elementFormDefault", "unqualified")

    def extra(self, el: etree._Element, plain: set[str]) -> tuple:
        return tuple(sorted((k, v) for k, v in el.attrib.items() if k not in plain))

    def type_ref(self, el: etree._Element) -> tuple:
        if el.get("type"):
            return ("named", *resolve_qname(el, el.get("type")))
        children = xs_children(el)
        return ("anon", self.type_def(children[0])) if children else ("named", XS_NS, "anyType")

    def particle(self, el: etree._Element) -> tuple:
        tag = etree.QName(el).localname
        if tag == "element":
            extra = self.extra(el, _PLAIN_ELEMENT_ATTRS)
            if el.get("ref"):
                return ("ref", resolve_qname(el, el.get("ref")), occurs(el), extra)
            qualified = el.get("form", self.element_form) == "qualified"
            name = (self.tns if qualified else None, el.get("name"))
            return ("element", name, self.type_ref(el), occurs(el), extra)
        if tag == "any":
            return (
                "any",
                self.namespace_constraint(el.get("namespace", "##any")),
                el.get("processContents", "strict"),
                occurs(el),
            )
        if tag in ("sequence", "choice", "all"):
            return (tag, occurs(el), tuple(self.particle(c) for c in xs_children(el)))
        raise AssertionError(f"unsupported schema construct xs:{tag}")

    def namespace_constraint(self, value: str) -> tuple:
        if value == "##any":
            return ("any",)
        if value == "##other":
            return ("not", self.tns)
        tokens = {"##targetNamespace": self.tns, "##local": ""}
        return ("list", tuple(sorted(tokens.get(t, t) or "" for t in value.split())))

    def type_def(self, el: etree._Element) -> tuple:
        tag = etree.QName(el).localname
        if tag == "complexType":
            return ("complexType", self.extra(el, {"name"}), tuple(self.particle(c) for c in xs_children(el)))
        if tag == "simpleType":
            (restriction,) = xs_children(el)
            assert etree.QName(restriction).localname == "restriction", "only restrictions are supported"
            facets = xs_children(restriction)
            enumerations = tuple(sorted(f.get("value") for f in facets if etree.QName(f).localname == "enumeration"))
            others = tuple(
                (etree.QName(f).localname, f.get("value")) for f in facets if etree.QName(f).localname != "enumeration"
            )
            return ("simpleType", resolve_qname(restriction, restriction.get("base")), enumerations, others)
        raise AssertionError(f"unsupported type construct xs:{tag}")


def schema_components(entry: Path) -> dict[tuple, tuple]:
    """{(kind, namespace, name): canonical definition} for the whole schema set of entry."""
    components: dict[tuple, tuple] = {}
    for path, root in schema_documents(entry).items():
        canon = Canonicaliser(root)
        schema_key = ("schema", canon.tns, None)
        schema_value = canon.extra(root, {"targetNamespace", "elementFormDefault", "attributeFormDefault", "version"})
        assert components.setdefault(schema_key, schema_value) == schema_value
        for top in xs_children(root):
            kind = etree.QName(top).localname
            if kind in ("import", "include"):
                continue
            if kind == "element":
                value = ("element", canon.type_ref(top), canon.extra(top, _PLAIN_ELEMENT_ATTRS))
            elif kind in ("complexType", "simpleType"):
                value = canon.type_def(top)
            else:
                raise AssertionError(f"{path.name}: unsupported top-level xs:{kind}")
            key = (kind, canon.tns, top.get("name"))
            assert components.setdefault(key, value) == value, f"{path.name}: conflicting definitions of {key}"
    return components


def compare_components(official: dict, ours: dict) -> list[str]:
    problems = [f"missing in ours: {k}" for k in sorted(official.keys() - ours.keys(), key=str)]
    problems += [f"extra in ours: {k}" for k in sorted(ours.keys() - official.keys(), key=str)]
    for key in sorted(official.keys() & ours.keys(), key=str):
        if official[key] != ours[key]:
            problems.append(f"differs: {key}\n  official: {official[key]}\n  ours:     {ours[key]}")
    return problems


@needs_reference
@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_schema_set_equivalent_to_official(name: str, version: str) -> None:
    official = schema_components(official_responder(name, version))
    ours = schema_components(our_responder(name, version))
    problems = compare_components(official, ours)
    assert not problems, "\n".join(problems)


@needs_reference
def test_registry_schema_equivalent_to_official() -> None:
    problems = compare_components(schema_components(OFFICIAL_REGISTRY), schema_components(OUR_REGISTRY))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 2c. WSDL comparison
# ---------------------------------------------------------------------------------------
def wsdl_summary(path: Path) -> dict:
    root = etree.parse(str(path)).getroot()
    q = resolve_qname

    def soap_elements(parent: etree._Element | None) -> tuple:
        if parent is None:
            return ()
        items = []
        for el in parent:
            # only the binding extension elements (soap:*), not wsdl:* children
            if not isinstance(el.tag, str) or el.tag.startswith(WSDL):
                continue
            attrs = {k: (q(el, v) if k == "message" else v) for k, v in el.attrib.items()}
            items.append((el.tag, tuple(sorted(attrs.items()))))
        return tuple(items)

    schema = root.find(f"{WSDL}types/{XS}schema")
    return {
        "name": root.get("name"),
        "targetNamespace": root.get("targetNamespace"),
        "types": (
            schema.get("targetNamespace"),
            tuple(sorted(i.get("namespace") for i in schema.findall(f"{XS}import"))),
        ),
        "messages": {
            m.get("name"): tuple(
                (p.get("name"), q(p, p.get("element")) if p.get("element") else None, p.get("type"))
                for p in m.findall(f"{WSDL}part")
            )
            for m in root.findall(f"{WSDL}message")
        },
        "portTypes": {
            pt.get("name"): {
                op.get("name"): tuple(
                    (etree.QName(io).localname, q(io, io.get("message")))
                    for io in op
                    if isinstance(io.tag, str) and io.tag != f"{WSDL}documentation"
                )
                for op in pt.findall(f"{WSDL}operation")
            }
            for pt in root.findall(f"{WSDL}portType")
        },
        "bindings": {
            b.get("name"): (
                q(b, b.get("type")),
                soap_elements(b),  # soap:binding
                {
                    op.get("name"): (
                        soap_elements(op),
                        soap_elements(op.find(f"{WSDL}input")),
                        soap_elements(op.find(f"{WSDL}output")),
                    )
                    for op in b.findall(f"{WSDL}operation")
                },
            )
            for b in root.findall(f"{WSDL}binding")
        },
        "services": {
            s.get("name"): {p.get("name"): (q(p, p.get("binding")), soap_elements(p)) for p in s.findall(f"{WSDL}port")}
            for s in root.findall(f"{WSDL}service")
        },
    }


@needs_reference
@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_wsdl_equivalent_to_official(name: str, version: str) -> None:
    official = wsdl_summary(official_wsdl(name, version))
    ours = wsdl_summary(our_wsdl(name, version))
    for key in official:
        assert ours[key] == official[key], f"{key} differs:\n official: {official[key]}\n ours:     {ours[key]}"


@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_wsdl_is_rivtabp21_soap11_document_literal(name: str, version: str) -> None:
    summary = wsdl_summary(our_wsdl(name, version))
    soap = f"{{{SOAP11_NS}}}"
    ((_, soap_binding, operations),) = summary["bindings"].values()
    assert soap_binding == (
        (f"{soap}binding", (("style", "document"), ("transport", "http://schemas.xmlsoap.org/soap/http"))),
    )
    ((op_elements, inp, out),) = operations.values()
    assert dict(op_elements[0][1])["soapAction"].endswith(f":{name}")
    assert (
        f"{soap}header",
        (("message", (summary["targetNamespace"], f"{name}Request")), ("part", "LogicalAddress"), ("use", "literal")),
    ) in inp
    assert (f"{soap}body", (("parts", "parameters"), ("use", "literal"))) in inp
    assert out == ((f"{soap}body", (("use", "literal"),)),)
    request_parts = dict((p[0], p[1]) for p in summary["messages"][f"{name}Request"])
    assert request_parts["LogicalAddress"] == (REGISTRY_NS, "LogicalAddress")


# ---------------------------------------------------------------------------------------
# 3. the rich samples exercise every element declaration of the messages
# ---------------------------------------------------------------------------------------
def named_complex(components: dict, type_ref: tuple) -> tuple | None:
    if type_ref[0] == "anon":
        return type_ref[1] if type_ref[1][0] == "complexType" else None
    return components.get(("complexType", type_ref[1], type_ref[2]))


def element_particles(type_def: tuple) -> list[tuple]:
    found = []
    for particle in type_def[2]:
        if particle[0] in ("sequence", "choice", "all"):
            found.extend(element_particles(("complexType", (), particle[2])))
        elif particle[0] in ("element", "ref"):
            found.append(particle)
    return found


def particle_target(components: dict, particle: tuple) -> tuple[tuple, tuple]:
    """(element qname, type ref) of an element or ref particle."""
    if particle[0] == "ref":
        _, type_ref, _ = components[("element", *particle[1])]
        return particle[1], type_ref
    return particle[1], particle[2]


def type_label(type_ref: tuple, owner: tuple) -> tuple:
    return type_ref[1:] if type_ref[0] == "named" else ("anonymous type of", owner)


def required_slots(components: dict, roots: list[tuple]) -> set[tuple]:
    slots, seen = set(), set()
    pending = [(root, components[("element", *root)][1]) for root in roots]
    while pending:
        owner, type_ref = pending.pop()
        label = type_label(type_ref, owner)
        complex_type = named_complex(components, type_ref)
        if complex_type is None or label in seen:
            continue
        seen.add(label)
        for particle in element_particles(complex_type):
            qname, child_type = particle_target(components, particle)
            slots.add((label, qname))
            pending.append((qname, child_type))
    return slots


def used_slots(components: dict, doc_root: etree._Element) -> set[tuple]:
    slots = set()

    def visit(el: etree._Element, owner: tuple, type_ref: tuple) -> None:
        complex_type = named_complex(components, type_ref)
        if complex_type is None:
            return
        label = type_label(type_ref, owner)
        by_name = {
            particle_target(components, p)[0]: particle_target(components, p)[1]
            for p in element_particles(complex_type)
        }
        for child in el:
            if not isinstance(child.tag, str):
                continue
            qname = (etree.QName(child).namespace, etree.QName(child).localname)
            if qname in by_name:
                slots.add((label, qname))
                visit(child, qname, by_name[qname])

    root_name = (etree.QName(doc_root).namespace, etree.QName(doc_root).localname)
    visit(doc_root, root_name, components[("element", *root_name)][1])
    return slots


@pytest.mark.parametrize(("name", "version"), CONTRACTS, ids=CONTRACT_IDS)
def test_rich_samples_cover_every_element(name: str, version: str) -> None:
    components = schema_components(our_responder(name, version))
    responder_ns = etree.parse(str(our_responder(name, version))).getroot().get("targetNamespace")
    required = required_slots(components, [(responder_ns, name), (responder_ns, f"{name}Response")])
    used: set[tuple] = set()
    for sample in (SAMPLES_DIR / f"{name}_{version}").glob("valid_*.xml"):
        doc = etree.parse(str(sample))
        assert load_schema(str(our_responder(name, version))).validate(doc), sample.name
        used |= used_slots(components, doc.getroot())
    missing = sorted(required - used, key=str)
    assert not missing, "element declarations never used by a valid sample:\n" + "\n".join(map(str, missing))
