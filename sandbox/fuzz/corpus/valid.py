import json
from typing import Optional
async def main(city: str, days: int = 3, note: Optional[str] = None):
    """Weather."""
    data = {"city": city, "days": [d for d in range(days)]}
    match data:
        case {"city": str(c)}:
            return json.dumps(data)
    return f"{city!r:>10}"
