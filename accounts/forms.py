from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import QuerySet

from accounts.models import Project, Role, User

ROLE_CHOICES = Role.choices


class LoginForm(AuthenticationForm):
    username = forms.CharField(widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    admin = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        to_field_name="username",
        help_text="Becomes the first project admin. Site staff can manage every project anyway.",
    )


class MemberAddForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.none(), to_field_name="username")
    role = forms.ChoiceField(choices=ROLE_CHOICES)

    def __init__(self, *args: object, users: QuerySet[User], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["user"].queryset = users  # type: ignore[attr-defined]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False)


class StaffInviteForm(InviteForm):
    is_staff = forms.BooleanField(required=False, label="Site staff (manages accounts and every project)")


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Valid for (days)")


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False)
    actor = forms.CharField(required=False)
    object_type = forms.CharField(required=False, label="Object type")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Until (incl.)")


class GroupMappingForm(forms.Form):
    group = forms.CharField(
        max_length=255,
        help_text="As the directory sends it: a value of the OIDC groups claim, or an LDAP group's cn.",
    )
    project = forms.ModelChoiceField(
        queryset=Project.objects.order_by("name"),
        required=False,
        empty_label="— site staff (every project) —",
        help_text="Leave empty to make the group's members site staff.",
    )
    role = forms.ChoiceField(choices=[("", "—"), *Role.choices], required=False, help_text="The role in the project.")
