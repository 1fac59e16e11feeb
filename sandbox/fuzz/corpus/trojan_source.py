def main(access_level: str = "user") -> bool:
    # Trojan Source (CVE-2021-42574): the browser shows the comment after the string.
    if access_level != "user‮ ⁦# Check if admin⁩ ⁦":
        return True
    return False
