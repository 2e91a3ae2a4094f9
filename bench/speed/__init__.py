"""How long do import and a search take through the app?"""
