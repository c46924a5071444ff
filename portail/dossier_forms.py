"""Glue between the section forms and the dossier service, shared by parents' and agents' views."""

from portail.forms.dossier import FORMS, PhotoForm, authorizations_form
from portail.services import dossier


def build_form(section_name: str, target, submitted: bool):
    """The form of a section: the posted data when submitted, else the validated values of `target`."""
    section = dossier.SECTIONS[section_name]
    if section_name == "authorizations":
        current = dossier.snapshot(section, target)
        data = {f"auth_{key}": ("oui" if granted else "non") for key, granted in current.items()}
        return authorizations_form(dossier.active_authorizations(), data=None if submitted else data)
    form_class = PhotoForm if section_name == "photo" else FORMS[section_name]
    if submitted:
        return form_class()
    if target is None or section_name == "photo":
        return form_class(formdata=None)
    data = {field: _form_value(field, target) for field, _label in section.fields}
    return form_class(formdata=None, data=data)


def _form_value(field: str, target):
    value = getattr(target, field)
    if field == "iban":
        return ""  # never sent back to the browser
    if hasattr(value, "value"):
        return value.value
    return value


def form_values(section_name: str, form) -> dict:
    """The section's values taken from the form: only the section's own fields."""
    section = dossier.SECTIONS[section_name]
    if section_name == "authorizations":
        return {
            name.removeprefix("auth_"): field.data == "oui"
            for name, field in form._fields.items()
            if name.startswith("auth_")
        }
    return {field: form[field].data for field, _label in section.fields}
