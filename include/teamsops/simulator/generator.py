"""Deterministic generator of realistic simulated tenants (the demo tenant and every test tenant).

The same :class:`TenantSpec` always yields the same tenant, byte for byte: every id and choice comes from one
``random.Random(seed)`` consumed in a fixed order, timestamps are anchored at ``spec.epoch`` (not the wall clock), and
nothing iterates over a ``set`` of strings (whose order changes between processes).

What a tenant holds (Graph property names, see graph-facts §6/§7): the organization with two verified domains;
members (~5% disabled) and B2B guests (~10%) with a manager hierarchy; licences from real SKUs with consistent
``subscribedSkus`` counts; Microsoft 365 groups, Teams with heavy-tailed (Pareto) sizes, owners, guests and channels
(standard / private / shared); security groups; a Teams app catalog (store, organization and sideloaded apps) with
per-user and per-team installations, including the demo bot; built-in directory roles with their real template ids and
a few assignments (one break-glass Global Administrator, a disabled admin, a guest and a service principal holding
roles); soft-deleted users; and the demo app registrations.

Performance: a 100,000-user tenant generates in a few seconds: users are plain dicts built once, nested values
(licences, plans, team settings) are shared between objects that have the same value, and nothing is deep-copied.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from teamsops.simulator.model import (
    AppRegistration,
    ClientSecret,
    DeletedUser,
    Directory,
    Tenant,
    iso,
    opaque_id,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------- demo constants
# Obviously fake, fixed values for the default spec (the offline demo tenant). Other specs derive their own.
DEMO_TENANT_ID = "c0ffee00-0000-4000-8000-00000000d001"
DEMO_TENANT_DOMAIN = "contoso-demo.onmicrosoft.com"
DEMO_CUSTOM_DOMAIN = "contoso-demo.com"
DEMO_TENANT_NAME = "Contoso Demo"
DEMO_APP_ID = "c0ffee00-0000-4000-8000-00000000a001"
DEMO_APP_SECRET = "demo~SyncAppSecret.not-a-real-secret.0001"
DEMO_BOT_APP_ID = "c0ffee00-0000-4000-8000-00000000b001"
DEMO_BOT_APP_SECRET = "demo~BotAppSecret.not-a-real-secret.0001"
# The botframework.com tenant that issues tokens to multi-tenant bots (Bot Framework authentication docs).
BOTFRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"

READ_ROLES = frozenset(
    {
        "User.Read.All",
        "Group.Read.All",
        "GroupMember.Read.All",
        "TeamMember.Read.All",
        "Channel.ReadBasic.All",
        "Organization.Read.All",
        "TeamsAppInstallation.ReadForUser.All",
        "RoleManagement.Read.Directory",
    }
)
WRITE_ROLES = frozenset({"User.ReadWrite.All", "TeamMember.ReadWrite.All", "User.RevokeSessions.All"})
BOT_APP_ROLES = frozenset({"TeamsAppInstallation.ReadWriteSelfForUser.All"})  # a bot may install itself for users

DEFAULT_EPOCH = "2025-06-02T09:00:00Z"
SECRET_EXPIRY = datetime(2099, 12, 31, tzinfo=timezone.utc)
_V4_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_V4_BITS = (0x4 << 76) | (0x2 << 62)
_APP_NAMESPACE = uuid.UUID("6f2c1e0a-5b7d-4c1e-9a43-0c5e5ab1e000")  # for store-app ids shared by every tenant

# ---------------------------------------------------------------------------------------------------- licences
# (skuPartNumber, skuId, service plans). skuIds are the real ones (Microsoft's licensing service plan reference).
_PLANS = {
    "TEAMS1": ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TeamspaceAPI"),
    "EXCHANGE_S_ENTERPRISE": ("efb87545-963c-4e0d-99df-69c6916d9eb0", "exchange"),
    "EXCHANGE_S_STANDARD": ("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "exchange"),
    "EXCHANGE_S_FOUNDATION": ("113feb6c-3fe4-4440-bddc-54d774bf0318", "exchange"),
    "SHAREPOINTENTERPRISE": ("5dbe027f-2339-4123-9542-606e4d348a72", "SharePoint"),
    "SHAREPOINTSTANDARD": ("c7699d2e-19aa-44de-8edf-1736da088ca1", "SharePoint"),
    "MCOSTANDARD": ("0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "MicrosoftCommunicationsOnline"),
    "OFFICESUBSCRIPTION": ("43de0ff5-c92c-492b-9116-175376d08c38", "MicrosoftOffice"),
    "AAD_PREMIUM": ("41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AADPremiumService"),
    "AAD_PREMIUM_P2": ("eec0eb4f-6444-4f95-aba0-50c24d67f998", "AADPremiumService"),
    "INTUNE_A": ("c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "SCO"),
    "BI_AZURE_P0": ("2049e525-b859-401b-b2a0-e0a31c4b1fe4", "PowerBI"),
    "FLOW_P2_VIRAL": ("50e68c76-46c6-4674-81f9-75456511b170", "ProcessSimple"),
}
_E3_PLANS = ("TEAMS1", "EXCHANGE_S_ENTERPRISE", "SHAREPOINTENTERPRISE", "MCOSTANDARD", "OFFICESUBSCRIPTION")
SKUS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", (*_E3_PLANS, "AAD_PREMIUM", "INTUNE_A")),
    ("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", (*_E3_PLANS, "AAD_PREMIUM", "AAD_PREMIUM_P2", "INTUNE_A")),
    ("ENTERPRISEPREMIUM", "c7df2760-2c81-4ef7-b578-5b5392b571df", _E3_PLANS),
    (
        "O365_BUSINESS_PREMIUM",
        "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
        ("TEAMS1", "EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD", "MCOSTANDARD"),
    ),
    ("TEAMS_EXPLORATORY", "710779e8-3d4a-4c88-adb9-386c958d1fdf", ("TEAMS1", "EXCHANGE_S_FOUNDATION")),
    ("FLOW_FREE", "f30db892-07e9-47e9-837c-80727f46fd3d", ("FLOW_P2_VIRAL", "EXCHANGE_S_FOUNDATION")),
    ("POWER_BI_STANDARD", "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", ("BI_AZURE_P0", "EXCHANGE_S_FOUNDATION")),
    ("EMS", "efccb6f7-5641-4e0e-bd10-b4976e1bf68e", ("AAD_PREMIUM", "INTUNE_A")),  # bought, never assigned
    ("AAD_PREMIUM_P2", "84a661c4-e949-4bd2-a560-ed7766fcaf2b", ("AAD_PREMIUM", "AAD_PREMIUM_P2")),
)
SKU_IDS = {part: sku_id for part, sku_id, _ in SKUS}
# Cumulative distribution of a member's primary licence (the rest, ~10%, are unlicensed service/shared accounts).
_PRIMARY_LICENCES = (
    (0.55, "SPE_E3"),
    (0.70, "SPE_E5"),
    (0.78, "ENTERPRISEPREMIUM"),
    (0.83, "O365_BUSINESS_PREMIUM"),
    (0.90, "TEAMS_EXPLORATORY"),
)

# ---------------------------------------------------------------------------------------------------- roles
# Built-in directory roles: (displayName, templateId, isPrivileged, description). For built-ins id == templateId.
ROLE_DEFINITIONS: tuple[tuple[str, str, bool, str], ...] = (
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
        True,
        "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
    ),
    (
        "Privileged Role Administrator",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        True,
        "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management.",
    ),
    (
        "User Administrator",
        "fe930be7-5e62-47db-91af-98c3a49a38b1",
        True,
        "Can manage all aspects of users and groups, including resetting passwords for limited admins.",
    ),
    (
        "Helpdesk Administrator",
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        True,
        "Can reset passwords for non-administrators and Helpdesk Administrators.",
    ),
    (
        "Authentication Administrator",
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        True,
        "Can access to view, set and reset authentication method information for any non-admin user.",
    ),
    (
        "Privileged Authentication Administrator",
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        True,
        "Can access to view, set and reset authentication method information for any user (admin or non-admin).",
    ),
    (
        "Security Administrator",
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        True,
        "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365.",
    ),
    (
        "Password Administrator",
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        True,
        "Can reset passwords for non-administrators and Password Administrators.",
    ),
    (
        "Application Administrator",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        True,
        "Can create and manage all aspects of app registrations and enterprise apps.",
    ),
    (
        "Cloud Application Administrator",
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        True,
        "Can create and manage all aspects of app registrations and enterprise apps except App Proxy.",
    ),
    (
        "Conditional Access Administrator",
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        True,
        "Can manage Conditional Access capabilities.",
    ),
    (
        "Intune Administrator",
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        True,
        "Can manage all aspects of the Intune product.",
    ),
    (
        "Exchange Administrator",
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        False,
        "Can manage all aspects of the Exchange product.",
    ),
    (
        "SharePoint Administrator",
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        False,
        "Can manage all aspects of the SharePoint service.",
    ),
    ("Teams Administrator", "69091246-20e8-4a56-aa4d-066075b2a7a8", False, "Can manage the Microsoft Teams service."),
    (
        "Teams Communications Administrator",
        "baf37b3a-610e-45da-9e62-d9d1e5e8914b",
        False,
        "Can manage calling and meetings features within the Microsoft Teams service.",
    ),
    (
        "Global Reader",
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        False,
        "Can read everything that a Global Administrator can, but not update anything.",
    ),
    (
        "Security Reader",
        "5d6b6bb7-de71-4623-b4af-96380a352509",
        False,
        "Can read security information and reports in Microsoft Entra ID and Office 365.",
    ),
    (
        "License Administrator",
        "4d6ac14f-3453-41d0-bef9-a3e0c569773a",
        False,
        "Can manage product licenses on users and groups.",
    ),
    (
        "Groups Administrator",
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
        False,
        "Members of this role can create/manage groups, create/manage groups settings like naming and expiration "
        "policies.",
    ),
    (
        "Billing Administrator",
        "b0f54661-2d74-4c50-afa3-1ec803f12efe",
        False,
        "Can perform common billing related tasks like updating payment information.",
    ),
    (
        "Compliance Administrator",
        "17315797-102d-40b4-93e0-432062caca18",
        False,
        "Can read and manage compliance configuration and reports in Microsoft Entra ID and Microsoft 365.",
    ),
    ("Reports Reader", "4a5d8f65-41da-4de4-8968-e035b65339cf", False, "Can read sign-in and audit reports."),
    ("Directory Readers", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b", False, "Can read basic directory information."),
    (
        "Guest Inviter",
        "95e79109-95c0-4d8e-aee3-d01accf2d47b",
        False,
        "Can invite guest users independent of the 'members can invite guests' setting.",
    ),
    (
        "Service Support Administrator",
        "f023fd81-a637-4b56-95fd-791ac0226033",
        False,
        "Can read service health information and manage support tickets.",
    ),
)
ROLE_IDS = {name: template for name, template, _, _ in ROLE_DEFINITIONS}

# ---------------------------------------------------------------------------------------------------- Teams apps
# (displayName, distributionMethod, version, short description, bot?). Store apps have the same id in every tenant.
_STORE_APPS = (
    ("OneNote", "1.0.0", "Capture notes and share them with your team."),
    ("Approvals", "1.0.4", "Create, manage, and share approvals directly from your hub for teamwork."),
    ("Tasks by Planner and To Do", "1.2.0", "Tasks by Planner and To Do brings your tasks into Teams."),
    ("Polly", "3.1.0", "Polls and surveys for Teams meetings and channels."),
    ("Power BI", "4.0.1", "Create, share and collaborate on Power BI reports."),
    ("Adobe Acrobat", "2.3.0", "View, edit and sign PDFs in Teams."),
    ("Trello", "1.5.2", "Organize projects with boards, lists and cards."),
    ("Jira Cloud", "2.0.7", "Collaborate on Jira issues from Teams."),
)
_ORG_APPS = (
    ("IT Ops Bot", "2.4.0", "Notifications and self-service from the IT operations team.", True),
    ("HR Portal", "1.3.1", "Leave requests, payslips and HR policies.", False),
    ("Expense Tracker", "1.0.9", "Submit and approve expenses.", True),
)
_SIDELOADED_APPS = (
    ("Dev Test Bot", "0.0.3", "A developer's test bot (sideloaded).", True),
    ("Hackathon Dashboard", "0.1.0", "Hackathon scoreboard tab.", False),
)
_USER_APP_ODDS = (
    ("OneNote", 0.30),
    ("Approvals", 0.22),
    ("Tasks by Planner and To Do", 0.35),
    ("Polly", 0.08),
    ("Power BI", 0.12),
    ("HR Portal", 0.25),
    ("Expense Tracker", 0.10),
)
_TEAM_APP_ODDS = (
    ("Tasks by Planner and To Do", 0.45),
    ("OneNote", 0.30),
    ("Polly", 0.15),
    ("Trello", 0.08),
    ("Jira Cloud", 0.07),
    ("Power BI", 0.12),
    ("Adobe Acrobat", 0.05),
)

# ---------------------------------------------------------------------------------------------------- people
_FIRST = (
    "Adele Alex Allan Alvin Amara Ana Anders Aroha Ben Bianca Carlos Chen Chloe Dana Daniel Diego Elena Emily "
    "Enrico Fatima Felix Grace Hana Hugo Ines Isaac Ivan Jamal Jane Jonas Joni Karin Kenji Lara Lee Lidia Lynne "
    "Maria Mateo Megan Miriam Nestor Nina Noah Olga Omar Patti Pradeep Priya Raul Rosa Sakura Samir Sara Sofia "
    "Tariq Tom Uma Victor Wen Yara Zoe"
).split()
_LAST = (
    "Vance Wilber Deyoung Adams Baker Nguyen Garcia Kim Müller Rossi Silva Tanaka Okafor Cohen Novak Singh "
    "Ivanova Haddad Jensen Kowalski Larsen Moreau Nakamura Ortiz Patel Quinn Reyes Schmidt Sato Torres Usman "
    "Varga Walsh Xu Yilmaz Zhang Brooks Campbell Diaz Evans Fischer Gomez Hansen Ito Jovanovic Keller Lopez "
    "Martin Nilsen O'Brien Petrov Ramos Suzuki Tran Weber Young"
).split()
_DEPARTMENTS = (
    ("Sales", ("Account Executive", "Sales Manager", "Sales Representative", "Customer Success Manager")),
    ("Marketing", ("Marketing Manager", "Content Strategist", "Product Marketing Manager")),
    ("Engineering", ("Software Engineer", "Senior Software Engineer", "Engineering Manager", "QA Engineer")),
    ("IT", ("IT Administrator", "Systems Engineer", "Service Desk Analyst", "IT Manager")),
    ("Finance", ("Accountant", "Financial Analyst", "Controller")),
    ("Human Resources", ("HR Generalist", "Recruiter", "HR Business Partner")),
    ("Operations", ("Operations Manager", "Logistics Coordinator", "Facilities Manager")),
    ("Legal", ("Legal Counsel", "Paralegal")),
    ("Research", ("Research Scientist", "Data Scientist", "Lab Technician")),
    ("Support", ("Support Engineer", "Support Team Lead")),
)
_OFFICES = (
    ("Seattle", "United States", "US", "WA"),
    ("New York", "United States", "US", "NY"),
    ("London", "United Kingdom", "GB", None),
    ("Berlin", "Germany", "DE", None),
    ("Paris", "France", "FR", None),
    ("Tokyo", "Japan", "JP", None),
    ("Bangalore", "India", "IN", None),
    ("Sydney", "Australia", "AU", None),
    ("São Paulo", "Brazil", "BR", None),
    ("Toronto", "Canada", "CA", None),
)
_GUEST_DOMAINS = (
    "fabrikam.com",
    "northwindtraders.com",
    "adatum.com",
    "tailspintoys.com",
    "woodgrovebank.com",
    "litware.com",
    "gmail.com",
    "outlook.com",
)
_TEAM_TOPICS = (
    "Project Phoenix",
    "Sales EMEA",
    "Sales Americas",
    "Marketing Campaigns",
    "Engineering Platform",
    "Mobile App",
    "Data & Analytics",
    "Security Champions",
    "IT Service Desk",
    "Finance Close",
    "HR Onboarding",
    "Legal Review",
    "Research Lab",
    "Customer Support",
    "Product Launch",
    "Design Guild",
    "Partner Program",
    "Quality Assurance",
    "Cloud Migration",
    "Office Seattle",
    "Office London",
    "Leadership Team",
    "Social Club",
    "Innovation Hub",
    "Procurement",
    "Events",
    "Training Academy",
    "Sustainability",
    "Release Train",
    "Incident Response",
)
_CHANNEL_NAMES = (
    "Announcements",
    "Planning",
    "Design",
    "Random",
    "Standup",
    "Reports",
    "Budget",
    "Hiring",
    "Customers",
    "Roadmap",
    "Incidents",
    "Releases",
    "Ideas",
    "Events",
    "Q&A",
    "Docs",
)

_MEMBER_SETTINGS = [
    {
        "allowCreateUpdateChannels": True,
        "allowCreatePrivateChannels": True,
        "allowDeleteChannels": True,
        "allowAddRemoveApps": True,
        "allowCreateUpdateRemoveTabs": True,
        "allowCreateUpdateRemoveConnectors": True,
    },
    {
        "allowCreateUpdateChannels": False,
        "allowCreatePrivateChannels": False,
        "allowDeleteChannels": False,
        "allowAddRemoveApps": False,
        "allowCreateUpdateRemoveTabs": True,
        "allowCreateUpdateRemoveConnectors": False,
    },
]
_GUEST_SETTINGS = {"allowCreateUpdateChannels": False, "allowDeleteChannels": False}
_MESSAGING_SETTINGS = {
    "allowUserEditMessages": True,
    "allowUserDeleteMessages": True,
    "allowOwnerDeleteMessages": True,
    "allowTeamMentions": True,
    "allowChannelMentions": True,
}
_FUN_SETTINGS = {
    "allowGiphy": True,
    "giphyContentRating": "moderate",
    "allowStickersAndMemes": True,
    "allowCustomMemes": True,
}
_DISCOVERY_SETTINGS = {"showInTeamsSearchAndSuggestions": True}
_TEAM_BEHAVIOURS = ["HideGroupInOutlook", "SubscribeMembersToCalendarEventsDisabled", "WelcomeEmailDisabled"]


@dataclass(frozen=True)
class TenantSpec:
    """What to generate. The default spec (``tenant_id`` and ``domain`` both None) is the demo tenant with the
    ``DEMO_*`` constants; any other spec derives its own ids and app credentials from the seed and tenant id.

    :param users: live (not deleted) users, guests included.
    :param teams: Microsoft 365 groups with a team.
    :param big_teams: teams forced above 1,000 members (default: 2 when ``users >= 5000``, else 0).
    :param deleted_users: soft-deleted users (default: 1% of ``users``, at least 1, at most 200).
    :param epoch: the tenant's "now" for generated timestamps (kept fixed so generation is reproducible).
    """

    seed: int = 42
    users: int = 300
    teams: int = 30
    guest_fraction: float = 0.10
    disabled_fraction: float = 0.05
    tenant_id: str | None = None
    domain: str | None = None
    display_name: str | None = None
    country: str = "US"
    big_teams: int | None = None
    deleted_users: int | None = None
    bot_user_fraction: float = 0.70
    bot_team_fraction: float = 0.60
    epoch: str = DEFAULT_EPOCH

    @property
    def is_demo(self) -> bool:
        return self.tenant_id is None and self.domain is None


def app_credentials(tenant: Tenant) -> dict[str, str]:
    """The generated sync app and bot credentials of a tenant: ``{app_id, secret, bot_app_id, bot_secret}``."""
    meta = tenant.generated
    sync, bot = tenant.apps[meta["sync_app_id"]], tenant.apps[meta["bot_app_id"]]
    return {
        "app_id": sync.app_id,
        "secret": sync.secrets[0].value,
        "bot_app_id": bot.app_id,
        "bot_secret": bot.secrets[0].value,
    }


def demo_directory(spec: TenantSpec | None = None) -> Directory:
    """A Directory holding one generated tenant (the demo tenant by default)."""
    directory = Directory()
    directory.add_tenant(generate_tenant(spec or TenantSpec()))
    return directory


def generate_tenant(spec: TenantSpec) -> Tenant:
    """Generate a tenant (with its demo app registrations) from a spec; deterministic."""
    if spec.users < 2:
        raise ValueError("a tenant needs at least 2 users (the break-glass admin and one member)")
    started = time.perf_counter()
    builder = _Builder(spec)
    tenant = builder.build()
    log.info(
        "generated tenant %s: %d users, %d groups, %d teams in %.2fs",
        tenant.id,
        len(tenant.users),
        len(tenant.groups),
        len(tenant.teams),
        time.perf_counter() - started,
    )
    return tenant


class _Builder:
    """Builds one tenant; each ``_add_*`` step consumes the RNG in a fixed order."""

    def __init__(self, spec: TenantSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed if spec.is_demo else f"{spec.seed}:{spec.tenant_id}:{spec.domain}")
        self.epoch = datetime.strptime(spec.epoch, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        self.epoch_ts = self.epoch.timestamp()
        self.tenant_id, self.initial_domain, self.custom_domain, self.name = self._identity()
        # Object ids must be unique across tenants (they are GUIDs in one global directory), so a non-demo tenant's
        # RNG also depends on its identity: two tenants generated with the same seed never share ids.
        self.tenant = Tenant(id=self.tenant_id, display_name=self.name, initial_domain=self.initial_domain)
        self.tenant.verified_domains = [self.custom_domain, self.initial_domain]
        self.members: list[str] = []  # member user ids (hierarchy order; [0] is the CEO)
        self.guests: list[str] = []
        self.enabled_members: list[str] = []
        self.licence_cache: dict[tuple[str, ...], tuple[list, list]] = {}
        self.nicknames: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def new_id(self) -> str:
        """A random (version 4) GUID from the seeded RNG; formatted by hand because uuid.UUID is slow at 100k+."""
        h = f"{(self.rng.getrandbits(128) & _V4_MASK) | _V4_BITS:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def pick(self, seq: Any) -> Any:
        """``rng.choice`` without its rejection sampling (about 3x faster; the tiny bias does not matter here)."""
        return seq[int(self.rng.random() * len(seq))]

    def past(self, max_days: float, min_days: float = 0.0) -> str:
        """An ISO timestamp between ``max_days`` and ``min_days`` before the epoch."""
        seconds = self.rng.uniform(min_days * 86400, max_days * 86400)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.epoch_ts - seconds))

    def _identity(self) -> tuple[str, str, str, str]:
        spec = self.spec
        if spec.is_demo:
            return DEMO_TENANT_ID, DEMO_TENANT_DOMAIN, DEMO_CUSTOM_DOMAIN, spec.display_name or DEMO_TENANT_NAME
        tenant_id = (spec.tenant_id or self.new_id()).lower()
        domain = (spec.domain or f"sim-{tenant_id[:8]}.onmicrosoft.com").lower()
        label = domain.split(".")[0]
        initial = domain if domain.endswith(".onmicrosoft.com") else f"{label}.onmicrosoft.com"
        custom = f"{label}.com" if domain.endswith(".onmicrosoft.com") else domain
        return tenant_id, initial, custom, spec.display_name or label.replace("-", " ").title()

    # ------------------------------------------------------------------ build
    def build(self) -> Tenant:
        self._add_skus()
        self._add_roles()
        self._add_users()
        self._add_managers()
        self._add_catalog()
        self._add_apps()
        self._add_teams()
        self._add_other_groups()
        self._add_installations()
        self._add_role_assignments()
        self._add_deleted_users()
        self._finish_skus()
        self._add_organization()
        return self.tenant

    def _add_skus(self) -> None:
        for part, sku_id, plans in SKUS:
            self.tenant.skus[sku_id] = {
                "accountName": self.name,
                "accountId": self.tenant_id,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": 0,
                "id": f"{self.tenant_id}_{sku_id}",
                "prepaidUnits": {"enabled": 0, "lockedOut": 0, "suspended": 0, "warning": 0},
                "servicePlans": [
                    {
                        "servicePlanId": _PLANS[p][0],
                        "servicePlanName": p,
                        "provisioningStatus": "Success",
                        "appliesTo": "User",
                    }
                    for p in plans
                ],
                "skuId": sku_id,
                "skuPartNumber": part,
                "subscriptionIds": [self.new_id()],
            }

    def _finish_skus(self) -> None:
        """prepaidUnits.enabled >= consumedUnits, with realistic headroom (and an unused SKU)."""
        for sku in self.tenant.skus.values():
            consumed = sku["consumedUnits"]
            enabled = consumed + max(5, consumed // 10) if consumed else 25
            sku["prepaidUnits"] = {"enabled": enabled, "lockedOut": 0, "suspended": 0, "warning": 0}

    def _add_roles(self) -> None:
        for name, template, privileged, description in ROLE_DEFINITIONS:
            self.tenant.role_definitions[template] = {
                "id": template,
                "description": description,
                "displayName": name,
                "isBuiltIn": True,
                "isEnabled": True,
                "isPrivileged": privileged,
                "resourceScopes": ["/"],
                "templateId": template,
                "version": "1",
                "rolePermissions": [{"allowedResourceActions": _role_actions(name), "condition": None}],
                "inheritsPermissionsFrom": [],
            }

    # ------------------------------------------------------------------ users
    def _add_users(self) -> None:
        spec, rng = self.spec, self.rng
        n_guests = min(spec.users - 2, round(spec.users * spec.guest_fraction))
        n_members = spec.users - n_guests
        self._add_break_glass()
        for index in range(n_members - 1):
            disabled = rng.random() < spec.disabled_fraction
            self._add_member(index, disabled)
        for _ in range(n_guests):
            self._add_guest()

    def _store_user(self, user: dict[str, Any]) -> None:
        self.tenant.users[user["id"]] = user
        self.tenant.upn_index[user["userPrincipalName"].lower()] = user["id"]

    def _add_break_glass(self) -> None:
        user_id = self.new_id()
        upn = f"breakglass-admin@{self.initial_domain}"  # on the initial domain: survives federation outages
        created = self.past(1500, 1000)
        self._store_user(
            {
                "id": user_id,
                "userPrincipalName": upn,
                "displayName": "Break Glass Admin",
                "mailNickname": "breakglass-admin",
                "accountEnabled": True,
                "userType": "Member",
                "businessPhones": [],
                "assignedLicenses": [],
                "assignedPlans": [],
                "createdDateTime": created,
                "signInSessionsValidFromDateTime": created,
                "lastPasswordChangeDateTime": created,
                "passwordPolicies": "DisablePasswordExpiration",
                "usageLocation": self.spec.country,
                "proxyAddresses": [],
                "otherMails": [],
                "signInActivity": self._sign_in(True, stale=True),
            }
        )
        self.break_glass = user_id

    def _nickname(self, first: str, last: str) -> str:
        base = re.sub(r"[^A-Za-z0-9.]", "", f"{first}.{last}".replace("ü", "u").replace("ã", "a")) or "user"
        count = self.nicknames.get(base.lower(), 0) + 1
        self.nicknames[base.lower()] = count
        return base if count == 1 else f"{base}{count}"

    def _add_member(self, index: int, disabled: bool) -> None:
        rng, pick = self.rng, self.pick
        first, last = pick(_FIRST), pick(_LAST)
        department, titles = pick(_DEPARTMENTS)
        city, country, usage, state = pick(_OFFICES)
        nick = self._nickname(first, last)
        upn = f"{nick}@{self.custom_domain}"
        licences, plans = self._licences()
        user_id = self.new_id()
        created = self.past(2000, 30)
        user = {
            "id": user_id,
            "userPrincipalName": upn,
            "displayName": f"{first} {last}",
            "givenName": first,
            "surname": last,
            "mail": upn,
            "mailNickname": nick,
            "accountEnabled": not disabled,
            "userType": "Member",
            "department": department,
            "jobTitle": "Chief Executive Officer" if index == 0 else pick(titles),
            "officeLocation": f"{city}/{int(rng.random() * 40) + 1}",
            "companyName": self.name,
            "employeeId": f"E{100000 + index}",
            "employeeType": "Employee" if rng.random() < 0.9 else "Contractor",
            "businessPhones": [f"+1 425 555 {int(rng.random() * 10000):04d}"],
            "mobilePhone": f"+1 206 555 {int(rng.random() * 10000):04d}",
            "usageLocation": usage,
            "city": city,
            "country": country,
            "createdDateTime": created,
            "assignedLicenses": licences,
            "assignedPlans": plans,
            "signInSessionsValidFromDateTime": created,
            "lastPasswordChangeDateTime": self.past(200),
            "preferredLanguage": "en-US",
            "proxyAddresses": [f"SMTP:{upn}"],
            "otherMails": [],
            "signInActivity": self._sign_in(not disabled),
        }
        if state:
            user["state"] = state
        if rng.random() < 0.3:  # hybrid identities synced from on-premises AD
            user["onPremisesSyncEnabled"] = True
        self._store_user(user)
        self.members.append(user_id)
        if not disabled:
            self.enabled_members.append(user_id)

    def _add_guest(self) -> None:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        ext_domain = rng.choice(_GUEST_DOMAINS)
        local = self._nickname(first, last).lower()
        email = f"{local}@{ext_domain}"
        upn = f"{local}_{ext_domain}#EXT#@{self.initial_domain}"
        user_id = self.new_id()
        created = self.past(900, 1)
        accepted = rng.random() < 0.85
        self._store_user(
            {
                "id": user_id,
                "userPrincipalName": upn,
                "displayName": f"{first} {last} ({ext_domain.split('.')[0].title()})",
                "givenName": first,
                "surname": last,
                "mail": email,
                "mailNickname": f"{local}_{ext_domain}#EXT#",
                "accountEnabled": True,
                "userType": "Guest",
                "creationType": "Invitation",
                "externalUserState": "Accepted" if accepted else "PendingAcceptance",
                "businessPhones": [],
                "assignedLicenses": [],
                "assignedPlans": [],
                "createdDateTime": created,
                "otherMails": [email],
                "signInSessionsValidFromDateTime": created,
                "proxyAddresses": [f"SMTP:{email}"],
                "signInActivity": self._sign_in(accepted, stale=rng.random() < 0.3),
            }
        )
        self.guests.append(user_id)

    def _sign_in(self, active: bool, stale: bool = False) -> dict[str, Any]:
        if not active and self.rng.random() < 0.5:
            return {
                "lastSignInDateTime": None,
                "lastSignInRequestId": None,
                "lastNonInteractiveSignInDateTime": None,
                "lastNonInteractiveSignInRequestId": None,
                "lastSuccessfulSignInDateTime": None,
                "lastSuccessfulSignInRequestId": None,
            }
        recent = self.past(400, 91) if (stale or not active) else self.past(30)
        request_id = self.new_id()
        return {
            "lastSignInDateTime": recent,
            "lastSignInRequestId": request_id,
            "lastNonInteractiveSignInDateTime": recent,
            "lastNonInteractiveSignInRequestId": request_id,
            "lastSuccessfulSignInDateTime": recent,
            "lastSuccessfulSignInRequestId": request_id,
        }

    def _licences(self) -> tuple[list, list]:
        """assignedLicenses + assignedPlans for a member; one shared (never mutated) pair per combination."""
        rng = self.rng
        roll = rng.random()
        combo = [part for threshold, part in _PRIMARY_LICENCES if roll < threshold][:1]
        if rng.random() < 0.25:
            combo.append("POWER_BI_STANDARD")
        if rng.random() < 0.12:
            combo.append("FLOW_FREE")
        key = tuple(combo)
        for part in key:
            self.tenant.skus[SKU_IDS[part]]["consumedUnits"] += 1
        if key not in self.licence_cache:
            self.licence_cache[key] = self._licence_values(key)
        return self.licence_cache[key]

    def _licence_values(self, parts: tuple[str, ...]) -> tuple[list, list]:
        licences = [{"disabledPlans": [], "skuId": SKU_IDS[p]} for p in parts]
        plans, seen = [], {}
        assigned = iso(self.epoch - timedelta(days=400))
        for part in parts:
            for plan in next(s[2] for s in SKUS if s[0] == part):
                if plan not in seen:
                    seen[plan] = None
                    plan_id, service = _PLANS[plan]
                    plans.append(
                        {
                            "assignedDateTime": assigned,
                            "capabilityStatus": "Enabled",
                            "service": service,
                            "servicePlanId": plan_id,
                        }
                    )
        return licences, plans

    def _add_managers(self) -> None:
        """A hierarchy with a fan-out of about 7: member i reports to a member hired before it (no cycles)."""
        rng, tenant, members = self.rng, self.tenant, self.members
        for i in range(1, len(members)):
            if rng.random() < 0.03:  # contractors, shared and service accounts without a manager
                continue
            j = min(i - 1, max(0, (i - 1) // 7 + rng.randint(-2, 2)))
            tenant.link_manager(members[i], members[j])

    # ------------------------------------------------------------------ apps
    def _add_catalog(self) -> None:
        self.apps_by_name: dict[str, str] = {}
        for name, version, short in _STORE_APPS:
            app_id = (
                "0d820ecd-def2-4297-adad-78056cde7c78" if name == "OneNote" else str(uuid.uuid5(_APP_NAMESPACE, name))
            )
            self._catalog_entry(app_id, None, name, "store", version, short, None)
        for name, version, short, bot in _ORG_APPS:
            self._catalog_entry(
                self.new_id(), self.new_id(), name, "organization", version, short, self.new_id() if bot else None
            )
        for name, version, short, bot in _SIDELOADED_APPS:
            manifest = self.new_id()
            self._catalog_entry(manifest, manifest, name, "sideloaded", version, short, self.new_id() if bot else None)

    def _catalog_entry(
        self,
        app_id: str,
        external_id: str | None,
        name: str,
        method: str,
        version: str,
        short: str,
        bot_app_id: str | None,
    ) -> None:
        self.tenant.catalog[app_id] = {
            "id": app_id,
            "externalId": external_id,
            "displayName": name,
            "distributionMethod": method,
        }
        self.tenant.app_definitions[app_id] = {
            "id": opaque_id(app_id, version),
            "teamsAppId": app_id,
            "azureADAppId": bot_app_id,
            "displayName": name,
            "version": version,
            "publishingState": "published",
            "shortDescription": short,
            "description": f"{short} ({method} app)",
            "lastModifiedDateTime": self.past(300) if method != "store" else None,
            "createdBy": None,
        }
        self.apps_by_name[name] = app_id

    def _add_apps(self) -> None:
        """The demo sync app and the demo bot, whose Teams app is the 'IT Ops Bot' organization app."""
        spec, tenant = self.spec, self.tenant
        if spec.is_demo:
            ids = (DEMO_APP_ID, DEMO_APP_SECRET, DEMO_BOT_APP_ID, DEMO_BOT_APP_SECRET)
        else:  # derived from the seed and tenant id, so two tenants never share app ids
            derive = random.Random(f"{spec.seed}:{self.tenant_id}:apps")
            ids = (
                str(uuid.UUID(int=derive.getrandbits(128), version=4)),
                _secret(derive, "Sync"),
                str(uuid.UUID(int=derive.getrandbits(128), version=4)),
                _secret(derive, "Bot"),
            )
        sync_id, sync_secret, bot_id, bot_secret = ids
        bot_teams_app = self.apps_by_name["IT Ops Bot"]
        tenant.app_definitions[bot_teams_app] = {**tenant.app_definitions[bot_teams_app], "azureADAppId": bot_id}
        self.bot_teams_app = bot_teams_app
        tenant.apps[sync_id] = self._registration(sync_id, "TeamsOps Sync", sync_secret, set(READ_ROLES | WRITE_ROLES))
        tenant.apps[bot_id] = self._registration(bot_id, "IT Ops Bot", bot_secret, set(BOT_APP_ROLES))
        tenant.apps[bot_id].bot = True
        tenant.apps[bot_id].teams_app_id = bot_teams_app
        tenant.generated = {"spec": spec, "sync_app_id": sync_id, "bot_app_id": bot_id}

    def _registration(self, app_id: str, name: str, secret: str, roles: set[str]) -> AppRegistration:
        sp_id = self.new_id()
        self.tenant.service_principals[sp_id] = {
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": sp_id,
            "appId": app_id,
            "displayName": name,
            "servicePrincipalType": "Application",
        }
        secret_obj = ClientSecret(value=secret, key_id=self.new_id(), expires_at=SECRET_EXPIRY)
        return AppRegistration(
            app_id=app_id,
            display_name=name,
            tenant_id=self.tenant_id,
            service_principal_id=sp_id,
            secrets=[secret_obj],
            roles=roles,
        )

    # ------------------------------------------------------------------ teams and groups
    def _team_sizes(self) -> list[int]:
        """Heavy-tailed (Pareto) sizes; an org-wide team first when the tenant is small enough (Teams caps org-wide
        teams at 10,000 members); ``big_teams`` teams forced above 1,000 members."""
        spec, rng = self.spec, self.rng
        pool = len(self.members)
        cap = min(pool, 25_000)  # Teams' maximum team size
        sizes = [min(cap, int(3 * rng.paretovariate(1.15)) + 2) for _ in range(spec.teams)]
        start = 0
        if spec.teams and pool <= 10_000 and spec.teams >= 5:
            sizes[0], start = pool, 1
        big = spec.big_teams if spec.big_teams is not None else (2 if spec.users >= 5000 else 0)
        for i in range(start, min(spec.teams, start + big)):
            sizes[i] = min(cap, max(sizes[i], 1001 + rng.randrange(0, 900)))
        return sizes

    def _add_teams(self) -> None:
        rng = self.rng
        names: dict[str, int] = {}
        for index, size in enumerate(self._team_sizes()):
            org_wide = index == 0 and size == len(self.members) and self.spec.teams >= 5
            topic = "All Company" if org_wide else rng.choice(_TEAM_TOPICS)
            names[topic] = names.get(topic, 0) + 1
            name = topic if names[topic] == 1 else f"{topic} {names[topic]}"
            group_id = self._add_unified_group(name, team=True)
            members = list(self.members) if org_wide else rng.sample(self.members, size)
            guest_count = (
                0
                if org_wide or not self.guests
                else min(len(self.guests), int(size * 0.12 * rng.random()), max(0, 25_000 - size))
            )
            for user_id in members + rng.sample(self.guests, guest_count):
                self.tenant.link_member(group_id, user_id)
            self._add_owners(group_id, members, ownerless=index > 0 and rng.random() < 0.03)
            self._add_team(group_id, name)

    def _add_owners(self, group_id: str, members: list[str], ownerless: bool = False) -> None:
        if ownerless or not members:  # orphaned teams exist in real tenants (their owners left)
            return
        count = 1 + (self.rng.random() < 0.5) + (self.rng.random() < 0.2)
        for user_id in self.rng.sample(members, min(count, len(members))):
            self.tenant.link_owner(group_id, user_id)

    def _add_unified_group(self, name: str, team: bool) -> str:
        group_id = self.new_id()
        nick = re.sub(r"[^A-Za-z0-9]", "", name) or "group"
        nick = f"{nick}{group_id[:4]}"
        mail = f"{nick}@{self.custom_domain}"
        created = self.past(1500, 20)
        group = {
            "id": group_id,
            "createdDateTime": created,
            "description": f"{name} team" if team else f"{name} group",
            "displayName": name,
            "groupTypes": ["Unified"],
            "mail": mail,
            "mailEnabled": True,
            "mailNickname": nick,
            "proxyAddresses": [f"SMTP:{mail}"],
            "renewedDateTime": created,
            "resourceBehaviorOptions": _TEAM_BEHAVIOURS if team else [],
            "resourceProvisioningOptions": ["Team"] if team else [],
            "securityEnabled": False,
            "securityIdentifier": _sid(group_id),
            "visibility": "Private" if self.rng.random() < 0.6 else "Public",
        }
        self.tenant.groups[group_id] = group
        return group_id

    def _add_team(self, group_id: str, name: str) -> None:
        rng, tenant = self.rng, self.tenant
        group = tenant.groups[group_id]
        general_id = _thread_id(rng)
        tenant.teams[group_id] = {
            "id": group_id,
            "createdDateTime": group["createdDateTime"],
            "displayName": name,
            "description": group["description"],
            "internalId": general_id,
            "classification": None,
            "specialization": "none",
            "visibility": group["visibility"].lower(),
            "webUrl": f"https://teams.microsoft.com/l/team/{quote(general_id)}/conversations?groupId={group_id}"
            f"&tenantId={self.tenant_id}",
            "isArchived": rng.random() < 0.05,
            "isMembershipLimitedToOwners": False,
            "memberSettings": _MEMBER_SETTINGS[rng.random() < 0.2],
            "guestSettings": _GUEST_SETTINGS,
            "messagingSettings": _MESSAGING_SETTINGS,
            "funSettings": _FUN_SETTINGS,
            "discoverySettings": _DISCOVERY_SETTINGS,
            "tenantId": self.tenant_id,
        }
        channels = [self._channel(group_id, general_id, "General", "standard", group["createdDateTime"], None)]
        for channel_name in rng.sample(_CHANNEL_NAMES, min(len(_CHANNEL_NAMES), int(rng.paretovariate(1.6)) - 1)):
            roll = rng.random()
            kind = "private" if roll < 0.15 else "shared" if roll < 0.20 else "standard"
            channels.append(
                self._channel(
                    group_id, _thread_id(rng), channel_name, kind, self.past(600, 1), f"{channel_name} for {name}"
                )
            )
        tenant.channels[group_id] = channels

    def _channel(
        self, team_id: str, channel_id: str, name: str, kind: str, created: str, description: str | None
    ) -> dict:
        return {
            "id": channel_id,
            "createdDateTime": created,
            "displayName": name,
            "description": description,
            "isFavoriteByDefault": None,
            "email": "",
            "membershipType": kind,
            "tenantId": self.tenant_id,
            "isArchived": False,
            "webUrl": f"https://teams.microsoft.com/l/channel/{quote(channel_id)}/{quote(name)}?groupId={team_id}"
            f"&tenantId={self.tenant_id}",
        }

    def _add_other_groups(self) -> None:
        """Microsoft 365 groups without a team and security groups (the sync must tell them apart)."""
        rng, tenant = self.rng, self.tenant
        for index in range(max(2, self.spec.teams // 4)):
            group_id = self._add_unified_group(f"{rng.choice(_TEAM_TOPICS)} Mail {index + 1}", team=False)
            members = rng.sample(self.members, min(len(self.members), int(2 * rng.paretovariate(1.3)) + 1))
            for user_id in members:
                tenant.link_member(group_id, user_id)
            self._add_owners(group_id, members)
        for index in range(max(2, self.spec.teams // 6)):
            group_id = self.new_id()
            name = f"SG-{rng.choice(_DEPARTMENTS)[0].replace(' ', '')}-{index + 1}"
            tenant.groups[group_id] = {
                "id": group_id,
                "createdDateTime": self.past(1500, 20),
                "description": f"Security group {name}",
                "displayName": name,
                "groupTypes": [],
                "mailEnabled": False,
                "mailNickname": name.lower(),
                "proxyAddresses": [],
                "resourceBehaviorOptions": [],
                "resourceProvisioningOptions": [],
                "securityEnabled": True,
                "securityIdentifier": _sid(group_id),
            }
            for user_id in rng.sample(self.members, min(len(self.members), int(4 * rng.paretovariate(1.2)))):
                tenant.link_member(group_id, user_id)

    def _add_installations(self) -> None:
        rng, tenant, spec = self.rng, self.tenant, self.spec
        user_odds = [(self.apps_by_name[name], p) for name, p in _USER_APP_ODDS]
        team_odds = [(self.apps_by_name[name], p) for name, p in _TEAM_APP_ODDS]
        for user_id in self.members:
            installed = {self.bot_teams_app: None} if rng.random() < spec.bot_user_fraction else {}
            for app_id, p in user_odds:
                if rng.random() < p:
                    installed[app_id] = None
            if installed:
                tenant.user_apps[user_id] = installed
        for team_id in tenant.teams:
            installed = {self.bot_teams_app: None} if rng.random() < spec.bot_team_fraction else {}
            for app_id, p in team_odds:
                if rng.random() < p:
                    installed[app_id] = None
            if installed:
                tenant.team_apps[team_id] = installed

    # ------------------------------------------------------------------ roles
    def _add_role_assignments(self) -> None:
        rng = self.rng
        pool = self.enabled_members[1:] or self.enabled_members
        self._assign("Global Administrator", self.break_glass)
        plan = (
            ("Global Administrator", 1),
            ("Privileged Role Administrator", 1),
            ("User Administrator", 2),
            ("Helpdesk Administrator", min(20, max(2, len(pool) // 2000))),
            ("Teams Administrator", 2),
            ("Exchange Administrator", 1),
            ("Global Reader", 2),
            ("Security Reader", 1),
            ("License Administrator", 1),
        )
        for role, count in plan:
            for user_id in rng.sample(pool, min(count, len(pool))):
                self._assign(role, user_id)
        disabled = [m for m in self.members if not self.tenant.users[m]["accountEnabled"]]
        if disabled:  # a stale admin: a classic audit finding
            self._assign("User Administrator", rng.choice(disabled))
        if self.guests:
            self._assign("Global Reader", rng.choice(self.guests))
        provisioning = self._registration(self.new_id(), "Contoso HR Provisioning", _secret(rng, "Hr"), set())
        self._assign("User Administrator", provisioning.service_principal_id)

    def _assign(self, role: str, principal_id: str) -> None:
        role_id = ROLE_IDS[role]
        assignment_id = f"{_b64_guid(role_id)}{_b64_guid(principal_id)}-1"  # the shape Graph uses for these ids
        self.tenant.role_assignments[assignment_id] = {
            "id": assignment_id,
            "principalId": principal_id,
            "resourceScope": "/",
            "directoryScopeId": "/",
            "roleDefinitionId": role_id,
        }

    # ------------------------------------------------------------------ deleted users, organization
    def _add_deleted_users(self) -> None:
        spec, tenant = self.spec, self.tenant
        count = spec.deleted_users if spec.deleted_users is not None else min(200, max(1, spec.users // 100))
        for index in range(count):
            self._add_member(10_000_000 + index, disabled=False)
            user_id = self.members.pop()
            self.enabled_members.pop()
            user = tenant.users.pop(user_id)
            tenant.upn_index.pop(user["userPrincipalName"].lower())
            tenant.adjust_consumed_units(user, -1)
            deleted_at = self.epoch - timedelta(seconds=self.rng.uniform(3600, 25 * 86400))
            tenant.deleted_users[user_id] = DeletedUser(
                user={**user, "userPrincipalName": user_id.replace("-", "") + user["userPrincipalName"]},
                deleted_at=deleted_at,
                original_upn=user["userPrincipalName"],
            )

    def _add_organization(self) -> None:
        created = iso(self.epoch - timedelta(days=2200))
        hybrid = any(u.get("onPremisesSyncEnabled") for u in self.tenant.users.values())
        self.tenant.organization = {
            "id": self.tenant_id,
            "displayName": self.name,
            "countryLetterCode": self.spec.country,
            "tenantType": "AAD",
            "createdDateTime": created,
            "deletedDateTime": None,
            "city": "Redmond",
            "country": None,
            "postalCode": "98052",
            "state": "WA",
            "street": "1 Demo Way",
            "preferredLanguage": "en",
            "businessPhones": ["+1 425 555 0100"],
            "marketingNotificationEmails": [],
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "technicalNotificationMails": [f"it-alerts@{self.custom_domain}"],
            "onPremisesSyncEnabled": True if hybrid else None,
            "onPremisesLastSyncDateTime": iso(self.epoch - timedelta(minutes=17)) if hybrid else None,
            "privacyProfile": None,
            "provisionedPlans": [],
            "assignedPlans": [
                {
                    "assignedDateTime": created,
                    "capabilityStatus": "Enabled",
                    "service": service,
                    "servicePlanId": plan_id,
                }
                for plan_id, service in _PLANS.values()
            ],
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": False,
                    "name": self.custom_domain,
                    "type": "Managed",
                },
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": False,
                    "isInitial": True,
                    "name": self.initial_domain,
                    "type": "Managed",
                },
            ],
        }


# ---------------------------------------------------------------------------------------------------- small helpers
def _secret(rng: random.Random, label: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return f"sim~{label}." + "".join(rng.choice(alphabet) for _ in range(32))


def _thread_id(rng: random.Random) -> str:
    return f"19:{rng.getrandbits(128):032x}@thread.tacv2"


def _sid(object_id: str) -> str:
    """The securityIdentifier Entra derives from an object id: S-1-12-1 plus the GUID as four little-endian uint32."""
    raw = uuid.UUID(object_id).bytes_le
    return "S-1-12-1-" + "-".join(str(int.from_bytes(raw[i : i + 4], "little")) for i in range(0, 16, 4))


def _b64_guid(value: str) -> str:
    return base64.urlsafe_b64encode(uuid.UUID(value).bytes_le).decode().rstrip("=")


def _role_actions(name: str) -> list[str]:
    if name == "Global Administrator":
        return [
            "microsoft.directory/users/allProperties/allTasks",
            "microsoft.directory/groups/allProperties/allTasks",
            "microsoft.directory/roleAssignments/allProperties/allTasks",
        ]
    if "Reader" in name:
        return ["microsoft.directory/users/standard/read", "microsoft.directory/groups/standard/read"]
    slug = re.sub(r"[^a-z]", "", name.split()[0].lower())
    return [
        f"microsoft.directory/{slug}/allProperties/allTasks",
        "microsoft.office365.serviceHealth/allEntities/allTasks",
    ]
