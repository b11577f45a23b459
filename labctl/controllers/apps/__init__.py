"""OpenFlow apps bundled with labctl, run by the os-ken (or Ryu) runner."""

# Short names the inventory may use for the bundled apps.
BUNDLED = {
    "l2_learning": "labctl.controllers.apps.l2_learning",
}
