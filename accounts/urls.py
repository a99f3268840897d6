from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import api, api_admin, api_identity, oidc, views, views_account, views_admin, views_identity

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Sign-in through the OIDC provider (404 unless OIDC_ISSUER is set); sign-out is /logout/ as for everyone.
    path("oidc/authenticate/", oidc.OIDCSignInView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.OIDCCallbackView.as_view(), name="oidc_authentication_callback"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/<id:pk>/members/", views.project_members, name="project_members"),
    path("projects/<id:pk>/members/add/", views.member_add, name="member_add"),
    path("projects/<id:pk>/members/invite/", views.member_invite, name="member_invite"),
    path("projects/<id:pk>/members/<id:membership_pk>/role/", views.member_change_role, name="member_role"),
    path("projects/<id:pk>/members/<id:membership_pk>/remove/", views.member_remove, name="member_remove"),
    path("projects/<id:pk>/audit/", views_admin.project_audit, name="project_audit"),
    path("audit/", views_admin.site_audit, name="site_audit"),
    path("users/", views_admin.users, name="users"),
    path("users/<id:pk>/active/", views_admin.user_set_active, name="user_set_active"),
    path("users/group-mappings/", views_identity.group_mappings, name="group_mappings"),
    path(
        "users/group-mappings/<id:mapping_pk>/delete/", views_identity.group_mapping_delete, name="group_mapping_delete"
    ),
    path("account/password/", views_account.password_change, name="password_change"),
    path("account/tokens/", views_account.api_tokens, name="api_tokens"),
    path("account/tokens/<str:token_key>/revoke/", views_account.api_token_revoke, name="api_token_revoke"),
    # Before the token route, which would take "set-password" for a token.
    path("invite/<str:uidb64>/set-password/", views_account.invite_set_password, name="invite_set_password"),
    path("invite/<str:uidb64>/<str:token>/", views_account.invite_accept, name="invite_accept"),
]

api_urlpatterns = [
    path("me/", api.MeView.as_view(), name="api_me"),
    path("auth/token/", api_admin.SignInView.as_view(), name="api_sign_in"),
    path("projects/", api_admin.ProjectListCreateView.as_view(), name="api_projects"),
    path("projects/<id:pk>/", api_admin.ProjectDetailUpdateView.as_view(), name="api_project"),
    path("projects/<id:pk>/invitations/", api_admin.MemberInviteView.as_view(), name="api_member_invite"),
    path("users/", api_admin.UserListView.as_view(), name="api_users"),
    path("users/<id:user_pk>/", api_admin.UserDetailView.as_view(), name="api_user"),
    path("group-mappings/", api_identity.GroupMappingListView.as_view(), name="api_group_mappings"),
    path("group-mappings/<id:mapping_pk>/", api_identity.GroupMappingDetailView.as_view(), name="api_group_mapping"),
    path("projects/<id:pk>/members/", api.MemberListView.as_view(), name="api_members"),
    path("projects/<id:pk>/members/<id:membership_pk>/", api.MemberDetailView.as_view(), name="api_member"),
    path("projects/<id:pk>/audit-events/", api.ProjectAuditEventListView.as_view(), name="api_project_audit"),
    path("audit-events/", api.AuditEventListView.as_view(), name="api_audit"),
    path("tokens/", api.ApiTokenListView.as_view(), name="api_tokens_list"),
    path("tokens/<str:token_key>/", api.ApiTokenDetailView.as_view(), name="api_token"),
]
