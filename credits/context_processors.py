from credits.services import balance_of
from orgs.access import get_membership


def low_balance(request):
    """For admins, the low-balance banner: set when the balance is below the organization's
    warning threshold."""
    membership = get_membership(request)
    org = membership.org if membership and membership.is_admin else None
    if org is None or org.low_balance_threshold is None:
        return {}
    balance = balance_of(org)
    if balance >= org.low_balance_threshold:
        return {}
    return {"low_balance": {"balance": balance, "threshold": org.low_balance_threshold}}
