"""Loading and validation of slawatch's TOML files into frozen dataclasses."""

from .agent import AgentConfig, load_agent
from .checks import CHECK_TYPES, CheckConfig, HostCheck, HttpCheck, SnmpCheck, TcpCheck
from .contract import (
    BusinessHours, Contract, CreditTier, Maintenance, Objective, Party, Service, load_contract,
)
from .errors import ConfigError, Problem
from .values import Secret, format_duration, parse_duration
from .watchdog import AgentKey, User, WatchdogConfig, load_watchdog

__all__ = [
    "AgentConfig", "AgentKey", "BusinessHours", "CHECK_TYPES", "CheckConfig", "ConfigError",
    "Contract", "CreditTier", "HostCheck", "HttpCheck", "Maintenance", "Objective", "Party",
    "Problem", "Secret", "Service", "SnmpCheck", "TcpCheck", "User", "WatchdogConfig",
    "format_duration", "load_agent", "load_contract", "load_watchdog", "parse_duration",
]
