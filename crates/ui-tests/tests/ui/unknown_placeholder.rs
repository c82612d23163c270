// A placeholder must be standard or one of the action's declared fields.
trailseal::actions! {
    enum ShopAction {
        VoucherRedeem = "voucher.redeem" {
            trail: "admin",
            target: "voucher",
            fields: ["value_cents"],
            en: "{actor} redeemed voucher {target} worth {value_cent} cents",
            de: "{actor} hat Gutschein {target} im Wert von {value_cents} Cent eingelöst",
        },
    }
}

fn main() {
    let _ = ShopAction::VoucherRedeem;
}
